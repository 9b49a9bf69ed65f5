"""Helpers for the reliability tests: a real DATA built by the real stages, and the CLI as users run it.

A module of its own (like realsites_lib.py) so every tests/test_reliability_*.py file builds its
DATA the same way: the crawler stores a folder of shared images, facecrop crops them, dedup
publishes faces64/ and the shard. A test copies that DATA, damages the copy and runs a stage on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = {
    "crawler": ["crawler"],
    "facecrop": ["facecrop"],
    "dedup": ["dedup"],
    "summary": ["pipeline", "summary"],
}


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def stage(
    name: str, data: Path, config: Path, *extra: str, cascade: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m STAGE --config C --data D EXTRA...` in a subprocess, as a user runs it."""
    command = [
        sys.executable,
        "-m",
        *MODULES[name],
        "--config",
        str(config),
        "--data",
        str(data),
        "--no-progress",
        *extra,
    ]
    if cascade is not None:
        command += ["--cascade", str(cascade)]
    return subprocess.run(
        command,
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line(result: subprocess.CompletedProcess, label: str) -> str:
    """The single error line a failing stage must end with (no traceback, nothing else)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{label}: "), lines[0]
    return lines[0]


def write_config(path: Path, art: Path, extra: str = "") -> Path:
    path.write_text(
        f'[crawler]\nrate_per_host = 0\n[[sources]]\nkind = "folder"\npath = "{art}"\n'
        f"[facecrop]\nworkers = 1\n[dedup]\nworkers = 1\n{extra}",
        encoding="utf-8",
    )
    return path


def build_pipeline(root: Path, images: list[Path], cascade: Path) -> tuple[Path, Path]:
    """crawl -> facecrop -> dedup over `images`; returns (DATA, config)."""
    art = root / "art"
    art.mkdir(parents=True)
    for image in images:
        shutil.copy(image, art / image.name)
    config = write_config(root / "dataset.toml", art)
    data = root / "data"
    ok(stage("crawler", data, config))
    ok(stage("facecrop", data, config, cascade=cascade))
    ok(stage("dedup", data, config))
    return data, config


def copy_data(data: Path, into: Path) -> Path:
    target = into / "data"
    shutil.copytree(data, target, symlinks=True)
    return target


def tree_bytes(root: Path, *skip_suffixes: str) -> dict[str, bytes]:
    """Every file under `root` by relative path (the state files left out: they may differ)."""
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
