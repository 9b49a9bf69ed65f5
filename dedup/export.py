"""`python -m dedup export --format imagefolder|webdataset|parquet --out DIR`: the shard in formats other tools read.

People who build a face set go on to train with other tools (StyleGAN2-ADA, diffusers, timm, a
dataset hub), which read an image folder with `metadata.jsonl` (Hugging Face `datasets`), tar
shards (`webdataset`, img2dataset) or Parquet. Every export is made from the shard (ids, pixels
and labels exactly as the trainer sees them) joined by id with the faces64 and crops manifests,
so each row keeps its crop id and its source URL.

Atomic and incremental: every file is written to a temp file and renamed (`pipeline.atomic`),
and `DIR/export.json` records a content key per file, written last (a first export claims the
folder with an empty, `complete: false` one before its first file); a file whose key is
unchanged is not rebuilt, an unchanged rebuild is not rewritten, and files no longer planned are
removed. A kill leaves finished files and no half file under a final name; the next export
finishes the rest. The dataset card and its sample grid go into every export.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline import atomic, shard
from pipeline.errors import ConfigError, PipelineError
from pipeline.layout import SHARD_NAME, Layout
from pipeline.manifests import CropRow, read_rows

FORMATS = ("imagefolder", "webdataset", "parquet")
STATE_NAME = "export.json"
STATE_VERSION = 1
DEFAULT_SAMPLES_PER_SHARD = 10_000  # ~100 MB of 64 px PNGs per tar: the size img2dataset writes
DEFAULT_ROW_GROUP = 1_000  # ~10 MB per row group at 64 px: a reader streams one group at a time
LABEL = "hair_color"
# Crop-manifest fields each exported row carries beside the faces64 row (names that would clash are renamed).
CROP_FIELDS = ("site", "url", "page_url", "source_size", "box", "crop_box", "confidence", "likelihood")


@dataclasses.dataclass(frozen=True)
class Options:
    fmt: str
    out: Path
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD
    row_group_size: int = DEFAULT_ROW_GROUP

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if self.samples_per_shard < 1 or self.row_group_size < 1:
            raise ConfigError("--samples-per-shard and --row-group-size must be >= 1")


@dataclasses.dataclass
class Corpus:
    """The shard with one metadata row per face, in shard order."""

    images: np.ndarray  # uint8 [N, S, S, 3], memory-mapped
    ids: list[str]
    rows: list[dict[str, Any]]  # every faces64 manifest field + provenance + label, per shard row
    pixel_keys: list[str]  # the faces64 manifest's thumb_sha256 (or a digest of the row), per row
    sha256: str
    label_vocab: dict[str, list[str]]  # label kind -> class names; a row's `label` indexes them (-1 = none)


def _png(pixels: np.ndarray) -> bytes:
    """PNG bytes as dedup writes faces64/*.png (Pillow), so an exported file equals the published one."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def align_fields(crop: dict[str, Any]) -> dict[str, Any]:
    """The crop's kind and alignment (facecrop's `align` record), the same columns whether alignment ran or not."""
    align = crop.get("align") if isinstance(crop.get("align"), dict) else {}
    return {
        "crop_kind": align.get("kind", "box"),
        "align_fallback": align.get("fallback"),
        "align_angle": align.get("angle"),
        "align_scale": align.get("scale"),
    }


def load_corpus(layout: Layout) -> Corpus:
    """The shard (sha256-verified), joined by id with faces64/manifest.jsonl and crops/manifest.jsonl."""
    opened = shard.open_shard(layout.data)
    ids = list(opened.meta["ids"])
    faces = {row["id"]: row for row in atomic.read_jsonl(layout.faces_manifest) if isinstance(row, dict)}
    missing = [i for i in ids if i not in faces]
    if missing:
        raise shard.ShardError(
            f"{layout.faces_manifest} has no row for {len(missing)} shard ids "
            f"(first {missing[0]}); run `make dedup` again"
        )
    crops = {c.id: c.row for c in read_rows(layout.crops_manifest, CropRow.parse)[0]}
    label_index, vocab = (
        opened.labels(LABEL)
        if opened.meta.get("label_vocab", {}).get(LABEL)
        else (np.full(len(ids), -1, np.int64), [])
    )
    label_values = opened.meta.get("labels", {}).get(LABEL) or [None] * len(ids)
    rows = []
    for index, crop_id in enumerate(ids):
        face, crop = faces[crop_id], crops.get(crop_id, {})
        row = dict(face)
        row.update({key: crop.get(key) for key in CROP_FIELDS})
        row["crop_path"] = crop.get("path")
        row["source_meta"] = json.dumps(crop.get("meta") or {}, ensure_ascii=False, sort_keys=True)
        row.update(align_fields(crop))
        row.update(
            {
                "shard_index": index,
                "label": int(label_index[index]),
                "label_name": label_values[index],
                "label_kind": LABEL,
            }
        )
        rows.append(row)
    keys = [str(faces[i].get("hashes", {}).get("thumb_sha256") or "") for i in ids]
    return Corpus(opened.images, ids, rows, keys, opened.sha256, {LABEL: vocab})


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class Planned:
    """One output file: its content key, and how to write it if the key changed."""

    name: str  # relative to DIR (POSIX)
    key: str
    write: Callable[[Path], None]


def _write_with(path: Path, fill: Callable[[IO[bytes]], None]) -> None:
    """Temp file + rename; an identical result leaves the existing file (and its mtime) as it was."""
    with atomic.atomic_open(path, "wb", only_if_changed=True) as fh:
        fill(fh)


def plan_imagefolder(corpus: Corpus) -> list[Planned]:
    """`images/<id>.png` + `metadata.jsonl` (`file_name` + every row field): `datasets`' imagefolder layout."""
    planned = []
    for index, crop_id in enumerate(corpus.ids):
        name = f"images/{crop_id}.png"
        planned.append(
            Planned(
                name,
                _key("png", corpus.pixel_keys[index]),
                lambda p, i=index: _write_with(p, lambda fh: fh.write(_png(corpus.images[i]))),
            )
        )
    meta = [
        {"file_name": f"images/{crop_id}.png", **row}
        for crop_id, row in zip(corpus.ids, corpus.rows, strict=True)
    ]
    planned.append(Planned("metadata.jsonl", _key("metadata", meta), lambda p: atomic.write_jsonl(p, meta)))
    return planned


def _tar(corpus: Corpus, indices: range, fh: IO[bytes]) -> None:
    """One webdataset shard: per sample `<id>.png`, `<id>.json` (the row), `<id>.cls` (label index).

    Members have fixed owner and mtime 0, so the same samples make the same bytes and a re-export
    leaves the tar untouched.
    """
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for index in indices:
            crop_id, row = corpus.ids[index], corpus.rows[index]
            members = (
                ("png", _png(corpus.images[index])),
                ("json", json.dumps(row, ensure_ascii=False, sort_keys=True).encode()),
                ("cls", str(row["label"]).encode()),
            )
            for ext, payload in members:
                info = tarfile.TarInfo(f"{crop_id}.{ext}")
                info.size, info.mtime, info.mode, info.uname, info.gname = len(payload), 0, 0o644, "", ""
                tar.addfile(info, io.BytesIO(payload))


def plan_webdataset(corpus: Corpus, per_shard: int) -> list[Planned]:
    planned = []
    for number, start in enumerate(range(0, len(corpus.ids), per_shard)):
        indices = range(start, min(start + per_shard, len(corpus.ids)))
        key = _key("tar", [corpus.pixel_keys[i] for i in indices], [corpus.rows[i] for i in indices])
        planned.append(
            Planned(
                f"{number:06d}.tar", key, lambda p, r=indices: _write_with(p, lambda fh: _tar(corpus, r, fh))
            )
        )
    return planned


def _parquet(corpus: Corpus, group: int, fh: IO[bytes]) -> None:
    """One table, `group` rows per row group; `image` is {bytes, path} (the layout `datasets.Image` reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def batch(indices: range) -> pa.Table:
        rows = [
            {"image": {"bytes": _png(corpus.images[i]), "path": f"{corpus.ids[i]}.png"}, **corpus.rows[i]}
            for i in indices
        ]
        return pa.Table.from_pylist(rows, schema=schema)

    probe = [{"image": {"bytes": b"", "path": ""}, **row} for row in corpus.rows]
    schema = pa.Table.from_pylist(probe).schema  # every row's fields, so all row groups share one schema
    features = {field.name: _hf_feature(field.type) for field in schema}
    features["image"] = {"_type": "Image"}
    # The Hub's schema note: `datasets.load_dataset("parquet", ...)` then decodes `image` as a picture.
    schema = schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True)}
    )
    with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        for start in range(0, len(corpus.ids), group):
            writer.write_table(batch(range(start, min(start + group, len(corpus.ids)))), row_group_size=group)


def _hf_feature(kind: Any) -> Any:
    """An Arrow type as a `datasets` feature description (Value / List / struct), without importing datasets."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return {kind.field(i).name: _hf_feature(kind.field(i).type) for i in range(kind.num_fields)}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return {"feature": _hf_feature(kind.value_type), "_type": "List"}
    names = {
        pa.string(): "string",
        pa.large_string(): "large_string",
        pa.int64(): "int64",
        pa.float64(): "float64",
        pa.bool_(): "bool",
        pa.null(): "null",
        pa.binary(): "binary",
    }
    return {"dtype": names.get(kind, str(kind)), "_type": "Value"}


def plan_parquet(corpus: Corpus, group: int) -> list[Planned]:
    key = _key("parquet", group, corpus.pixel_keys, corpus.rows)
    return [
        Planned(
            f"{SHARD_NAME}.parquet", key, lambda p: _write_with(p, lambda fh: _parquet(corpus, group, fh))
        )
    ]


def plan_card(layout: Layout) -> list[Planned]:
    """The dataset card (also as README.md) and its grid, copied byte for byte."""
    planned = []
    # README.md: where a dataset hub looks for the card
    copies = (
        (layout.shard_card, layout.shard_card.name),
        (layout.shard_samples, layout.shard_samples.name),
        (layout.shard_card, "README.md"),
    )
    for source, name in copies:
        if source.is_file():
            planned.append(
                Planned(
                    name,
                    _key("card", hashlib.sha256(source.read_bytes()).hexdigest()),
                    lambda p, s=source: _write_with(p, lambda fh: shutil.copyfileobj(s.open("rb"), fh)),
                )
            )
    return planned


@dataclasses.dataclass
class ExportResult:
    written: int
    unchanged: int
    removed: int
    files: list[str]


def _read_state(out: Path, fmt: str) -> dict[str, str]:
    try:
        state = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or state.get("format") != fmt:
        return {}
    files = state.get("files")
    return (
        {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(files, dict)
        else {}
    )


def _check_out(out: Path, fmt: str) -> None:
    """Refuse to export into a folder holding something else, so stale-file removal can never delete a stranger's files."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    state = out / STATE_NAME
    if out.is_dir() and any(out.iterdir()) and not state.is_file():
        raise ConfigError(
            f"--out {out} is not empty and holds no {STATE_NAME}: choose an empty or new folder"
        )
    if state.is_file():
        try:
            found = json.loads(state.read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            found = None
        if found not in (None, fmt):
            raise ConfigError(f"--out {out} holds a {found} export; export {fmt} into another folder")


def export(layout: Layout, options: Options, progress: bool = True) -> ExportResult:
    """Write (or bring up to date) one export of the shard in `options.out`."""
    out = options.out
    _check_out(out, options.fmt)
    corpus = load_corpus(layout)
    if options.fmt == "imagefolder":
        planned = plan_imagefolder(corpus)
    elif options.fmt == "webdataset":
        planned = plan_webdataset(corpus, options.samples_per_shard)
    else:
        planned = plan_parquet(corpus, options.row_group_size)
    planned += plan_card(layout)
    out.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(out)
    old = _read_state(out, options.fmt)
    if not (out / STATE_NAME).is_file():
        # Claim the folder before the first file, so an export killed half-way is resumed, not refused.
        atomic.write_json(
            out / STATE_NAME,
            {"version": STATE_VERSION, "format": options.fmt, "complete": False, "files": {}},
        )
    written = unchanged = 0
    for item in _bar(planned, options.fmt, progress):
        path = out / item.name
        if old.get(item.name) == item.key and path.is_file():
            unchanged += 1
            continue
        before = path.stat().st_mtime_ns if path.is_file() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        item.write(path)
        if before is not None and path.stat().st_mtime_ns == before:
            unchanged += 1
        else:
            written += 1
    names = {item.name for item in planned}
    removed = 0
    for name in sorted(set(old) - names):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            continue  # only ever a name this module wrote; never follow one out of the folder
        target = out / name
        if target.is_file():
            target.unlink()
            removed += 1
    atomic.write_json(
        out / STATE_NAME,
        {
            "version": STATE_VERSION,
            "format": options.fmt,
            "complete": True,
            "shard_sha256": corpus.sha256,
            "count": len(corpus.ids),
            "label_vocab": corpus.label_vocab,
            "files": {item.name: item.key for item in planned},
        },
    )
    return ExportResult(written, unchanged, removed, sorted(names))


def _bar(items: list[Planned], fmt: str, progress: bool) -> Iterator[Planned]:
    yield from tqdm(
        items,
        desc=f"dedup export: {fmt}",
        unit="file",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not progress,
    )


def summary(result: ExportResult, options: Options, seconds: float) -> dict[str, Any]:
    size = sum((options.out / name).stat().st_size for name in result.files if (options.out / name).is_file())
    if not result.files:
        raise PipelineError(f"nothing was exported to {options.out}")
    return {
        "format": options.fmt,
        "folder": str(options.out),
        "files": len(result.files),
        "written": result.written,
        "unchanged": result.unchanged,
        "removed": result.removed,
        "MiB": round(size / 2**20, 2),
        "seconds": round(seconds, 2),
    }
