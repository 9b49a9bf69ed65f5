"""Building a DATA directory the way the crawler leaves it, and running facecrop as users do.

Shared anime images are copied into pytest's tmp dirs (never into the repo); the raw
manifest is written with the crawler's field names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def add_raw(data: Path, content: bytes, ext: str, **fields) -> dict:
    """Store `content` like the crawler does and return its raw manifest row (not yet written)."""
    sha = hashlib.sha256(content).hexdigest()
    rel = f"raw/{sha[:2]}/{sha[2:4]}/{sha}.{ext}"
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
    path = data / "raw" / "manifest.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_config(path: Path, text: str = "") -> Path:
    path.write_text("[facecrop]\n" + text, encoding="utf-8")
    return path


def shared_images(testdata: Path, *subdirs: str) -> list[Path]:
    return [p for sub in subdirs for p in sorted((testdata / sub).iterdir()) if p.is_file()]


def build_data(data: Path, files: list[Path]) -> list[dict]:
    rows = [add_raw(data, f.read_bytes(), f.suffix.lstrip(".").lower(), meta={"title": f.name}) for f in files]
    write_raw_manifest(data, rows)
    return rows


def facecrop(*args: str, cascade: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "facecrop", *args, "--cascade", str(cascade)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def read_manifest(data: Path) -> list[dict]:
    path = data / "crops" / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, testdata, cascade_path):
    """One real run over full/ + negative/ (82 images), shared by the tests that only read it.

    One title is a script tag, as a hostile or sloppy site could serve.
    """
    data = tmp_path_factory.mktemp("full") / "data"
    files = shared_images(testdata, "full", "negative")
    rows = build_data(data, files)
    hostile = next(r for r in rows if r["meta"]["title"] == "gfpgan_realphoto__00.jpg")  # a rejected source
    hostile["meta"] = {"title": "<script>alert(1)</script>", "character": "<img src=x onerror=alert(2)>"}
    write_raw_manifest(data, rows)
    config = write_config(data.parent / "dataset.toml")
    result = facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    return {"data": data, "config": config, "raw": rows, "files": files, "stderr": result.stderr}


@pytest.fixture(scope="session")
def clean_full_manifest(full_run) -> bytes:
    return (full_run["data"] / "crops" / "manifest.jsonl").read_bytes()


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
