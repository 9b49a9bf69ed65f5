"""The trainer's side of the shard: `pipeline.shard` is the format; this names what train uses of it.

The trainer reads nothing else, so every way the shard can be wrong (missing, truncated,
wrong shape or version, bytes not matching the recorded sha256, empty) is one `ShardError`
line from `open_shard` rather than a tensor error deep inside the first training step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import shard as contract
from pipeline.layout import SHARD_NAME
from pipeline.shard import RUN_DATASET_FIRST, Shard, ShardError, shard_paths

__all__ = [
    "RUN_DATASET_FIRST",
    "SHARD_NAME",
    "Shard",
    "ShardError",
    "open_shard",
    "shard_paths",
    "write_shard",
]


def open_shard(data_dir: str | Path, image_size: int = 64, verify: bool = True) -> Shard:
    """Memory-map the shard after checking it against its JSON sidecar."""
    return contract.open_shard(data_dir, image_size, verify=verify)


def write_shard(
    data_dir: str | Path,
    images: np.ndarray,
    ids: list[str] | None = None,
    hair_color: list[str | None] | None = None,
) -> Path:
    """A shard in the dedup stage's format from an array; the benchmark and tests make inputs with it."""
    count = int(images.shape[0])
    contract.write_shard(
        data_dir,
        iter(images),
        count,
        tuple(images.shape[1:]),
        ids=ids if ids is not None else [f"row{i}" for i in range(count)],
        labels={"hair_color": hair_color if hair_color is not None else [None] * count},
        config={},
    )
    return shard_paths(data_dir)[0]
