"""DATA/faces64/: one browsable PNG per kept face, and manifest.jsonl describing each.

The thumbnails are made once, by the fingerprinting workers, into the stage's private cache
DATA/dedup/thumbs/; publishing a kept face hard-links (or copies) that file into faces64/
under a temp name and renames it, so faces64/ only ever holds whole files of kept faces.
A face that stops being kept (a better duplicate arrived, or a person demoted it) is removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline import atomic


def thumb_path(data_dir: Path, crop_id: str) -> Path:
    return data_dir / "dedup" / "thumbs" / f"{crop_id}.png"


def face_path(data_dir: Path, crop_id: str) -> Path:
    return data_dir / "faces64" / f"{crop_id}.png"


def publish(data_dir: Path, kept_ids: list[str]) -> tuple[int, int]:
    """Make faces64/ hold exactly the kept faces; returns (added or replaced, removed)."""
    out = data_dir / "faces64"
    out.mkdir(parents=True, exist_ok=True)
    added = 0
    for crop_id in kept_ids:
        source, target = thumb_path(data_dir, crop_id), face_path(data_dir, crop_id)
        if target.exists() and os.path.samefile(source, target):
            continue
        temp = out / f"{atomic.TEMP_PREFIX}{crop_id}.png"
        temp.unlink(missing_ok=True)
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, target)
        added += 1
    keep = {f"{crop_id}.png" for crop_id in kept_ids}
    removed = 0
    for png in out.glob("*.png"):
        if png.name not in keep:
            png.unlink()
            removed += 1
    return added, removed


def write_manifest(data_dir: Path, rows: list[dict]) -> None:
    atomic.write_jsonl(data_dir / "faces64" / "manifest.jsonl", rows)
