"""Opening and verifying the dedup stage's shard: DATA/shards/faces64.npy + faces64.json.

The trainer reads nothing else, so every way the shard can be wrong (missing, truncated,
wrong shape, bytes not matching the recorded sha256, empty) becomes one `ShardError` line
here rather than a tensor error deep inside the first training step.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.digest import file_digest

SHARD_NAME = "faces64"
RUN_DATASET_FIRST = "run `make dataset` first"


class ShardError(RuntimeError):
    """The shard cannot be used; the message names the file and the fix."""


@dataclasses.dataclass
class Shard:
    images: np.ndarray  # uint8 [N, S, S, 3], memory-mapped
    meta: dict[str, Any]
    npy_path: Path

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])

    def labels(self, name: str) -> tuple[np.ndarray, list[str]]:
        """Per-row class index (-1 where the row has no label) and the vocabulary."""
        vocab = list(self.meta.get("label_vocab", {}).get(name) or [])
        values = self.meta.get("labels", {}).get(name)
        if values is None or not vocab:
            raise ShardError(
                f"{self.npy_path.with_suffix('.json')}: no '{name}' labels in the shard; "
                "set [train] conditional = false or rebuild the shard with labels"
            )
        index = {v: i for i, v in enumerate(vocab)}
        if len(values) != self.count:
            raise ShardError(f"{self.npy_path.with_suffix('.json')}: {len(values)} '{name}' labels for {self.count} rows")
        try:
            ids = np.array([-1 if v is None else index[v] for v in values], dtype=np.int64)
        except KeyError as exc:
            raise ShardError(f"{self.npy_path.with_suffix('.json')}: label {exc} is not in label_vocab.{name}") from exc
        return ids, vocab


def shard_paths(data_dir: str | Path) -> tuple[Path, Path]:
    base = Path(data_dir) / "shards" / SHARD_NAME
    return base.with_suffix(".npy"), base.with_suffix(".json")


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def open_shard(data_dir: str | Path, image_size: int = 64, verify: bool = True) -> Shard:
    """Memory-map the shard after checking it against its JSON sidecar."""
    npy, meta_path = shard_paths(data_dir)
    if not npy.is_file():
        raise ShardError(f"no shard at {npy}; {RUN_DATASET_FIRST}")
    if not meta_path.is_file():
        raise ShardError(f"{meta_path} is missing (the shard was not finished); {RUN_DATASET_FIRST}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{meta_path} is not valid JSON ({exc}); {RUN_DATASET_FIRST}") from exc
    if not isinstance(meta, dict) or meta.get("version") != 1:
        raise ShardError(f"{meta_path}: expected shard format version 1, got {meta.get('version') if isinstance(meta, dict) else meta!r}")
    try:
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ShardError(f"{npy} is truncated or not a .npy array ({exc}); {RUN_DATASET_FIRST}") from exc
    expected = (image_size, image_size, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ShardError(
            f"{npy} holds {images.dtype} {list(images.shape)}, expected uint8 [N, {image_size}, {image_size}, 3]; "
            f"{RUN_DATASET_FIRST} (or set [train] image_size to match)"
        )
    if images.shape[0] == 0:
        raise ShardError(f"{npy} is empty (0 faces); {RUN_DATASET_FIRST} with sources that yield faces")
    if meta.get("count") != images.shape[0] or list(meta.get("shape", [])) != list(images.shape):
        raise ShardError(
            f"{meta_path} describes count={meta.get('count')} shape={meta.get('shape')} but {npy} holds "
            f"{list(images.shape)}; {RUN_DATASET_FIRST}"
        )
    if verify:
        actual = sha256_file(npy)
        if actual != meta.get("sha256"):
            raise ShardError(f"{npy} has sha256 {actual[:16]}…, {meta_path} records {str(meta.get('sha256'))[:16]}…; "
                             f"the shard is damaged or half-written; {RUN_DATASET_FIRST}")
    return Shard(images=images, meta=meta, npy_path=npy)


def write_shard(data_dir: str | Path, images: np.ndarray, ids: list[str] | None = None,
                hair_color: list[str | None] | None = None) -> Path:
    """Write a shard in the dedup stage's format; used by the benchmark and tests to make inputs."""
    from datetime import UTC, datetime

    from pipeline import atomic

    npy, meta_path = shard_paths(data_dir)
    npy.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_open(npy, "wb") as fh:
        np.save(fh, np.ascontiguousarray(images, dtype=np.uint8))
    count = int(images.shape[0])
    labels = hair_color if hair_color is not None else [None] * count
    meta = {
        "version": 1,
        "count": count,
        "shape": list(images.shape),
        "dtype": "uint8",
        "ids": ids if ids is not None else [f"row{i}" for i in range(count)],
        "labels": {"hair_color": labels},
        "label_vocab": {"hair_color": sorted({v for v in labels if v is not None})},
        "sha256": sha256_file(npy),
        "config": {},
        "created_at": datetime.now(UTC).isoformat(),
    }
    atomic.write_json(meta_path, meta)
    return npy
