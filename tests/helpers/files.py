"""Reading, comparing and damaging the files a stage leaves, as a test (not a stage) does.

`jsonl_rows` is strict on purpose: unlike pipeline.atomic.read_jsonl, which skips a torn line with
a warning, a line that does not parse fails the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def jsonl_rows(path: Path, *, missing_ok: bool = False) -> list:
    """Every non-blank line of a JSONL file, parsed; [] for a missing file only when `missing_ok`."""
    if missing_ok and not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tree_bytes(root: Path, *skip_suffixes: str) -> dict[str, bytes]:
    """Every file under `root` by relative path (names ending in `skip_suffixes` left out: they may differ)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(skip_suffixes)
    }


def garble(path: Path, offset: int = 200, count: int = 30) -> None:
    """Flip `count` bytes in place (same size), as a bad disk or a bad copy does."""
    data = bytearray(path.read_bytes())
    offset = min(offset, max(0, len(data) - count))
    for k in range(offset, min(len(data), offset + count)):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def copy_data(data: Path, into: Path) -> Path:
    """A copy of DATA at `into`/data (symlinks kept as links), for a test to change."""
    target = into / "data"
    shutil.copytree(data, target, symlinks=True)
    return target
