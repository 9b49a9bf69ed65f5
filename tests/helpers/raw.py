"""DATA/raw/ and raw/manifest.jsonl as the crawler leaves them, written by a test from bytes or files.

Shared anime images are copied into pytest's tmp dirs (never into the repo); the raw manifest is
written with the crawler's field names, at the paths pipeline.layout gives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.layout import Layout, rel_raw


def sha256_of(content: bytes) -> str:
    """The hex sha256 that names a stored image (the raw store is content-addressed)."""
    return hashlib.sha256(content).hexdigest()


def add_raw(data: Path, content: bytes, ext: str, **fields) -> dict:
    """Store `content` like the crawler does and return its raw manifest row (not yet written)."""
    sha = sha256_of(content)
    rel = rel_raw(sha, ext)
    path = Layout(data).path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
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


def shared_images(testdata: Path, *subdirs: str) -> list[Path]:
    """The files of these folders of the shared test data, sorted."""
    return [p for sub in subdirs for p in sorted((testdata / sub).iterdir()) if p.is_file()]


def store_raw(
    data: Path, files: list[Path], titles: dict[str, str] | None = None, character: str | None = None
) -> list[dict]:
    """`files` stored and listed in raw/manifest.jsonl, each titled by its name (or `titles[name]`)."""
    rows = []
    for f in files:
        meta = {"title": (titles or {}).get(f.name, f.name)}
        if character is not None:
            meta["character"] = character
        rows.append(add_raw(data, f.read_bytes(), f.suffix.lstrip(".").lower(), meta=meta))
    write_raw_manifest(data, rows)
    return rows
