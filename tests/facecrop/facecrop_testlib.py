"""Helpers for facecrop's tests: a DATA directory as the crawler leaves it, and the CLI as users run it.

A module of its own (not conftest.py) so that `from facecrop_testlib import ...` can never
pick up another stage's conftest module.

Shared anime images are copied into pytest's tmp dirs (never into the repo); the raw
manifest is written with the crawler's field names.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.layout import Layout, rel_raw

REPO = Path(__file__).resolve().parents[2]


def add_raw(data: Path, content: bytes, ext: str, **fields) -> dict:
    """Store `content` like the crawler does and return its raw manifest row (not yet written)."""
    sha = hashlib.sha256(content).hexdigest()
    rel = rel_raw(sha, ext)
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    (data / rel).write_bytes(content)
    row = {
        "sha256": sha,
        "path": rel,
        "site": "testsite",
        "url": f"https://example.org/img/{sha[:8]}.{ext}",
        "page_url": "https://example.org/page",
        "fetched_at": "2026-01-01T00:00:00Z",
        "bytes": len(content),
        "format": ext,
        "meta": {"title": "title", "character": "someone"},
        "provenance": [],
    }
    row.update(fields)
    return row


def write_raw_manifest(data: Path, rows: list[dict]) -> None:
    path = Layout(data).raw_manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_config(path: Path, text: str = "") -> Path:
    path.write_text("[facecrop]\n" + text, encoding="utf-8")
    return path


def shared_images(testdata: Path, *subdirs: str) -> list[Path]:
    return [p for sub in subdirs for p in sorted((testdata / sub).iterdir()) if p.is_file()]


def build_data(data: Path, files: list[Path]) -> list[dict]:
    rows = [
        add_raw(data, f.read_bytes(), f.suffix.lstrip(".").lower(), meta={"title": f.name}) for f in files
    ]
    write_raw_manifest(data, rows)
    return rows


def facecrop(
    *args: str, cascade: Path, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "facecrop", *args, "--cascade", str(cascade)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def read_manifest(data: Path) -> list[dict]:
    path = Layout(data).crops_manifest
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
