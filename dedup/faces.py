"""DATA/faces64/: one browsable PNG per kept face, and manifest.jsonl describing each.

The PNGs are encoded from the thumbnail cache (the exact pixels that were hashed and that go
into the shard), in worker processes, each through pipeline.atomic (temp file, fsync, rename)
so faces64/ only ever holds whole files, also after a power cut. A face already published
with the same pixels is left alone; a face that stops being kept (a better duplicate
arrived, or a person demoted it) is removed.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dedup.workers import pool
from pipeline import atomic
from pipeline.layout import Layout
from pipeline.manifests import FaceRow, RowError


def _write_face(task: tuple[str, int, int, str]) -> None:
    """Encode one cache row as a PNG (runs in a worker; opens the cache itself to avoid pickling pixels)."""
    cache, side, row, target = task
    count = os.path.getsize(cache) // (side * side * 3)
    pixels = np.memmap(cache, dtype=np.uint8, mode="r", shape=(count, side, side, 3))[row]
    png = io.BytesIO()
    Image.fromarray(np.array(pixels)).save(png, format="PNG")
    atomic.write_bytes(target, png.getvalue())


def previously_published(layout: Layout) -> dict[str, str]:
    """id -> thumbnail digest of the faces the last run published."""
    published = {}
    for _, row in atomic.iter_jsonl(layout.faces_manifest):
        try:
            face = FaceRow.parse(row)
        except RowError:
            continue  # an unreadable row only means that face is encoded again
        published[face.id] = face.thumb_sha256
    return published


def publish(
    layout: Layout,
    kept: list[tuple[str, int, str]],
    cache: Path,
    side: int,
    workers: int,
    progress: bool = True,
) -> tuple[int, int]:
    """Make faces64/ hold exactly the kept faces, given (id, cache row, thumb digest); returns (written, removed)."""
    out = layout.faces_dir
    out.mkdir(parents=True, exist_ok=True)
    before = previously_published(layout)
    tasks = [
        (str(cache), side, row, str(layout.face(crop_id)))
        for crop_id, row, digest in kept
        if before.get(crop_id) != digest or not layout.face(crop_id).exists()
    ]
    if tasks:
        bar = tqdm(
            total=len(tasks),
            desc="dedup: faces64",
            unit="face",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not progress,
        )
        workers = min(workers, max(1, len(tasks) // 64))
        with pool(workers) as executor:
            for _ in executor.map(_write_face, tasks, chunksize=64):
                bar.update(1)
        bar.close()
    keep = {layout.face(crop_id).name for crop_id, _, _ in kept}
    removed = 0
    for png in out.glob("*.png"):
        if png.name not in keep:
            png.unlink()
            removed += 1
    return len(tasks), removed


def write_manifest(layout: Layout, rows: list[dict]) -> None:
    atomic.write_jsonl(layout.faces_manifest, rows)
