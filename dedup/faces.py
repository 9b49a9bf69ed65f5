"""DATA/faces64/: one browsable PNG per kept face, and manifest.jsonl describing each.

The PNGs are encoded from the thumbnail cache (the exact pixels that were hashed and that go
into the shard), in worker processes, each through a temp file + rename so faces64/ only
ever holds whole files. A face already published with the same pixels is left alone; a face
that stops being kept (a better duplicate arrived, or a person demoted it) is removed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dedup.workers import pool
from pipeline import atomic
from pipeline.atomic import read_jsonl


def face_path(data_dir: Path, crop_id: str) -> Path:
    return data_dir / "faces64" / f"{crop_id}.png"


def _write_face(task: tuple[str, int, int, str]) -> None:
    """Encode one cache row as a PNG (runs in a worker; opens the cache itself to avoid pickling pixels)."""
    cache, side, row, target = task
    count = os.path.getsize(cache) // (side * side * 3)
    pixels = np.memmap(cache, dtype=np.uint8, mode="r", shape=(count, side, side, 3))[row]
    temp = f"{os.path.dirname(target)}/{atomic.TEMP_PREFIX}{os.path.basename(target)}"
    Image.fromarray(np.array(pixels)).save(temp, format="PNG")
    os.replace(temp, target)


def previously_published(data_dir: Path) -> dict[str, str]:
    """id -> thumbnail digest of the faces the last run published."""
    rows = read_jsonl(data_dir / "faces64" / "manifest.jsonl")
    return {r["id"]: r.get("hashes", {}).get("thumb_sha256", "") for r in rows if isinstance(r, dict) and "id" in r}


def publish(data_dir: Path, kept: list[tuple[str, int, str]], cache: Path, side: int, workers: int) -> tuple[int, int]:
    """Make faces64/ hold exactly the kept faces, given (id, cache row, thumb digest); returns (written, removed)."""
    out = data_dir / "faces64"
    out.mkdir(parents=True, exist_ok=True)
    before = previously_published(data_dir)
    tasks = [(str(cache), side, row, str(face_path(data_dir, crop_id))) for crop_id, row, digest in kept
             if before.get(crop_id) != digest or not face_path(data_dir, crop_id).exists()]
    if tasks:
        bar = tqdm(total=len(tasks), desc="dedup: faces64", unit="face", file=sys.stderr, dynamic_ncols=True)
        workers = min(workers, max(1, len(tasks) // 64))
        with pool(workers) as executor:
            for _ in executor.map(_write_face, tasks, chunksize=64):
                bar.update(1)
        bar.close()
    keep = {f"{crop_id}.png" for crop_id, _, _ in kept}
    removed = 0
    for png in out.glob("*.png"):
        if png.name not in keep:
            png.unlink()
            removed += 1
    return len(tasks), removed


def write_manifest(data_dir: Path, rows: list[dict]) -> None:
    atomic.write_jsonl(data_dir / "faces64" / "manifest.jsonl", rows)
