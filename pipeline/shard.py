"""The training shard: DATA/shards/faces64.npy (uint8 [N, S, S, 3], RGB) + faces64.json, versioned.

The one writer and the one reader of the format, so changing it is this file plus its tests.
dedup writes the shard and train reads it; both (and the tests and benchmarks that make
shards) go through here, so the sidecar, its label vocabulary and its version check cannot
drift apart. The .npy is streamed row by row into a temp file and renamed into place, then
the JSON the same way: a reader sees the old pair, or the new .npy with the old JSON (whose
sha256 no longer matches, so `open_shard` refuses it), or the new pair - never half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline import atomic
from pipeline.digest import file_digest
from pipeline.errors import InputMissing
from pipeline.layout import Layout

FORMAT_VERSION = 1
RUN_DATASET_FIRST = "run `make dataset` first"


class ShardError(InputMissing):
    """The shard is missing, unfinished, damaged or of another format; the message names the file and the fix."""


def shard_paths(data_dir: str | Path) -> tuple[Path, Path]:
    layout = Layout(Path(data_dir))
    return layout.shard_npy, layout.shard_json


def label_vocab(labels: dict[str, Sequence[str | None]]) -> dict[str, list[str]]:
    """Each label's classes, sorted, without the "no label" None: the class index a row's label maps to."""
    return {name: sorted({v for v in values if v is not None}) for name, values in labels.items()}


def content_key(
    ids: list[str], pixel_digests: list[str], labels: dict[str, list], config: dict[str, Any]
) -> str:
    """Everything the shard's bytes and sidecar depend on, except the time it was written."""
    blob = json.dumps(
        {"ids": ids, "pixels": pixel_digests, "labels": labels, "config": config, "version": FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def write_shard(
    data_dir: str | Path,
    rows: Iterable[np.ndarray],
    count: int,
    row_shape: tuple[int, ...],
    ids: list[str],
    labels: dict[str, list[str | None]],
    config: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Stream `count` uint8 rows of `row_shape` ((S, S, 3) for a usable shard) into the shard and write
    its sidecar; returns the sidecar.

    The sha256 is computed over the bytes as they are written, so the file is never read
    back. `extra` adds writer-specific sidecar keys (dedup's `content_key`). Other row shapes
    are written as given, so tests can prove the reader refuses them.
    """
    npy, meta_path = shard_paths(data_dir)
    if len(ids) != count or any(len(values) != count for values in labels.values()):
        raise ValueError(f"shard of {count} rows needs {count} ids and labels, got {len(ids)} ids")
    shape = (count, *row_shape)
    digest = hashlib.sha256()
    with atomic.atomic_open(npy, "wb") as fh:
        out = _HashingWriter(fh, digest)
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(out, header)
        written = 0
        for row in rows:
            row = np.ascontiguousarray(row, dtype=np.uint8)
            if row.shape != shape[1:]:
                raise ValueError(f"shard row {written} has shape {row.shape}, expected {shape[1:]}")
            out.write(row.tobytes())
            written += 1
        if written != count:
            raise ValueError(f"shard expected {count} rows, got {written}")
    meta = {
        "version": FORMAT_VERSION,
        "count": count,
        "shape": list(shape),
        "dtype": "uint8",
        "sha256": digest.hexdigest(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ids": list(ids),
        "labels": labels,
        "label_vocab": label_vocab(labels),
        "config": config,
        **extra,
    }
    atomic.write_json(meta_path, meta)
    return meta


class _HashingWriter:
    """A file wrapper that hashes every byte on its way to disk."""

    def __init__(self, fh: IO[bytes], digest: Any) -> None:
        self.fh, self.digest = fh, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def read_sidecar(meta_path: Path) -> dict[str, Any]:
    """The sidecar JSON, refused with the file's name when it is missing, unreadable or of another version."""
    if not meta_path.is_file():
        raise ShardError(f"{meta_path} is missing (the shard was not finished); {RUN_DATASET_FIRST}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{meta_path} is not valid JSON ({exc}); {RUN_DATASET_FIRST}") from exc
    version = meta.get("version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise ShardError(
            f"{meta_path}: shard format version {version!r} is unknown (this code reads version "
            f"{FORMAT_VERSION}); rebuild the shard with `make dedup`"
        )
    return meta


def is_current(data_dir: str | Path, key: str) -> bool:
    """True when the shard on disk was made from exactly this content and its bytes verify.

    The sha256 check matters: a kill between renaming a new .npy and writing its JSON leaves
    an old JSON beside a new array, and only the hash tells them apart.
    """
    npy, meta_path = shard_paths(data_dir)
    try:
        meta = read_sidecar(meta_path)
        return meta.get("content_key") == key and file_digest(npy) == meta.get("sha256")
    except (ShardError, OSError):
        return False


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

    @property
    def json_path(self) -> Path:
        return self.npy_path.with_suffix(".json")

    def labels(self, name: str) -> tuple[np.ndarray, list[str]]:
        """Per-row class index (-1 where the row has no label) and the vocabulary."""
        vocab = list(self.meta.get("label_vocab", {}).get(name) or [])
        values = self.meta.get("labels", {}).get(name)
        if values is None or not vocab:
            raise ShardError(
                f"{self.json_path}: no '{name}' labels in the shard; "
                "set [train] conditional = false or rebuild the shard with labels"
            )
        index = {v: i for i, v in enumerate(vocab)}
        if len(values) != self.count:
            raise ShardError(f"{self.json_path}: {len(values)} '{name}' labels for {self.count} rows")
        try:
            ids = np.array([-1 if v is None else index[v] for v in values], dtype=np.int64)
        except KeyError as exc:
            raise ShardError(f"{self.json_path}: label {exc} is not in label_vocab.{name}") from exc
        return ids, vocab


def open_shard(
    data_dir: str | Path, image_size: int | None = None, verify: bool = True, allow_empty: bool = False
) -> Shard:
    """Memory-map the shard after checking it against its sidecar; every failure is one ShardError line.

    `image_size` None accepts any square side; `verify` re-hashes the .npy (3.7 GB at 300k faces).
    """
    npy, meta_path = shard_paths(data_dir)
    if not npy.is_file():
        raise ShardError(f"no shard at {npy}; {RUN_DATASET_FIRST}")
    meta = read_sidecar(meta_path)
    try:
        images = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ShardError(f"{npy} is truncated or not a .npy array ({exc}); {RUN_DATASET_FIRST}") from exc
    side = image_size if image_size is not None else (images.shape[1] if images.ndim == 4 else -1)
    expected = (side, side, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        wanted = "S, S" if image_size is None else f"{image_size}, {image_size}"
        raise ShardError(
            f"{npy} holds {images.dtype} {list(images.shape)}, expected uint8 [N, {wanted}, 3]; "
            f"{RUN_DATASET_FIRST} (or set [train] image_size to match)"
        )
    if images.shape[0] == 0 and not allow_empty:
        raise ShardError(f"{npy} is empty (0 faces); {RUN_DATASET_FIRST} with sources that yield faces")
    if (
        meta.get("count") != images.shape[0]
        or list(meta.get("shape", [])) != list(images.shape)
        or len(meta.get("ids", [])) != images.shape[0]
    ):
        raise ShardError(
            f"{meta_path} describes count={meta.get('count')} shape={meta.get('shape')} but {npy} holds "
            f"{list(images.shape)}; {RUN_DATASET_FIRST}"
        )
    if verify:
        actual = file_digest(npy)
        if actual != meta.get("sha256"):
            raise ShardError(
                f"{npy} has sha256 {actual[:16]}…, {meta_path} records {str(meta.get('sha256'))[:16]}…; "
                f"the shard is damaged or half-written; {RUN_DATASET_FIRST}"
            )
    return Shard(images=images, meta=meta, npy_path=npy)


def shard_count(data_dir: str | Path) -> int | None:
    """Faces in the shard as its sidecar records them (None without a readable sidecar): for summaries."""
    try:
        return int(read_sidecar(shard_paths(data_dir)[1]).get("count"))
    except (ShardError, TypeError, ValueError):
        return None
