"""The training shard: DATA/shards/faces64.npy (uint8 [N, S, S, 3], RGB) + faces64.json.

The trainer loads it in one read (or memory-maps it), so it is a plain .npy. It is streamed
row by row into a temp file beside the target and renamed into place, then the JSON is
written the same way: a reader sees the old pair, or the new .npy with the old JSON (whose
sha256 no longer matches, so `read_shard` refuses it), or the new pair - never half a file.
`content_key` lets a re-run skip the rewrite when nothing that goes into the shard changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic
from pipeline.digest import file_digest

VERSION = 1


class ShardMismatch(RuntimeError):
    """The .npy and its JSON do not belong together (a half-finished or damaged write)."""


def shard_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "shards" / "faces64.npy", data_dir / "shards" / "faces64.json"


def content_key(ids: list[str], thumb_digests: list[str], labels: dict[str, list], config: dict[str, Any]) -> str:
    """Everything the shard's bytes and JSON depend on, except the time it was written."""
    digest = hashlib.sha256(json.dumps({"ids": ids, "pixels": thumb_digests, "labels": labels,
                                        "config": config, "version": VERSION}, sort_keys=True).encode())
    return digest.hexdigest()


def is_current(data_dir: Path, key: str) -> bool:
    """True when the shard on disk was made from exactly this content and its bytes verify.

    The sha256 check matters: a kill between renaming a new .npy and writing its JSON leaves
    an old JSON beside a new array, and only the hash tells them apart.
    """
    npy, meta_path = shard_paths(data_dir)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("content_key") != key:
            return False
        return sha256_file(npy) == meta.get("sha256")
    except (OSError, ValueError):
        return False


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def write_shard(data_dir: Path, rows: Iterable[np.ndarray], count: int, side: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Stream `count` uint8 [side, side, 3] rows into the shard; returns the JSON written.

    The sha256 is computed over the bytes as they are written, so verifying the file
    later needs no second copy in memory.
    """
    npy, meta_path = shard_paths(data_dir)
    shape = (count, side, side, 3)
    digest = hashlib.sha256()
    written = 0
    with atomic.atomic_open(npy, "wb") as fh:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
        header_file = _HashingWriter(fh, digest)
        np.lib.format.write_array_header_1_0(header_file, header)
        for row in rows:
            row = np.ascontiguousarray(row, dtype=np.uint8)
            if row.shape != shape[1:]:
                raise ValueError(f"shard row {written} has shape {row.shape}, expected {shape[1:]}")
            header_file.write(row.tobytes())
            written += 1
        if written != count:
            raise ValueError(f"shard expected {count} rows, got {written}")
    full = {"version": VERSION, "count": count, "shape": list(shape), "dtype": "uint8",
            "sha256": digest.hexdigest(), "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta}
    atomic.write_json(meta_path, full)
    return full


class _HashingWriter:
    """A file wrapper that hashes every byte on its way to disk."""

    def __init__(self, fh, digest) -> None:
        self.fh, self.digest = fh, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def read_shard(data_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Memory-map the shard after checking that the .npy is the one its JSON describes."""
    npy, meta_path = shard_paths(data_dir)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if sha256_file(npy) != meta.get("sha256"):
        raise ShardMismatch(f"{npy} does not match the sha256 in {meta_path}: it was replaced mid-read or damaged")
    array = np.load(npy, mmap_mode="r", allow_pickle=False)
    if list(array.shape) != meta.get("shape") or len(meta.get("ids", [])) != array.shape[0]:
        raise ShardMismatch(f"{npy} holds {list(array.shape)} but {meta_path} describes {meta.get('shape')}")
    return array, meta
