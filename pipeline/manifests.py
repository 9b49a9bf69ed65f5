"""The manifest rows one stage hands the next, as small typed records.

Each manifest is JSONL with one row per item; a reader parses rows through here, so the
fields a later stage relies on, and what makes a row unusable, are stated once:
- `RawImage`: raw/manifest.jsonl (crawler -> facecrop, dedup's report, the summary);
- `CropRow`: crops/manifest.jsonl (facecrop -> dedup, the summary);
- `FaceRow`: faces64/manifest.jsonl (dedup -> the summary, you).
Rows keep their full dict (`row`) so fields a reader does not type still travel with them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline import atomic

SHA256 = re.compile(r"^[0-9a-f]{64}$")
RAW_SOURCE_FIELDS = ("site", "url", "page_url", "meta")  # provenance facecrop copies into every crop row


class RowError(ValueError):
    """A manifest row a stage cannot use; the message says why (the reader records it, never guesses)."""


def safe_relative(path: Any) -> str | None:
    """A manifest path if it stays inside DATA (relative, no '..', no backslashes), else None."""
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    return pure.as_posix()


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclasses.dataclass(frozen=True)
class RawImage:
    sha256: str  # lower-case hex: the image's identity and its crops' id prefix
    path: str  # relative to DATA; "" when the row's path is missing, absolute or outside DATA
    source: dict[str, Any]  # RAW_SOURCE_FIELDS, `meta` always a dict
    row: dict[str, Any] = dataclasses.field(compare=False, repr=False)

    @classmethod
    def parse(cls, row: Any) -> RawImage:
        sha = row.get("sha256") if isinstance(row, dict) else None
        if not isinstance(sha, str) or not SHA256.match(sha.lower()):
            raise RowError(f"no valid sha256 ({sha!r})")
        source = {key: row.get(key) for key in RAW_SOURCE_FIELDS}
        if not isinstance(source["meta"], dict):
            source["meta"] = {}
        return cls(sha.lower(), safe_relative(row.get("path")) or "", source, row)


@dataclasses.dataclass(frozen=True)
class CropRow:
    id: str  # <source sha256[:12]>_<x>_<y>_<w>_<h>, or <sha[:12]>_image for an image-level row
    source_sha256: str
    decision: str | None  # "accepted" / "rejected"
    reason: str | None
    path: str | None  # the crop file, relative to DATA (None for image-level rows)
    override: str | None  # "promote" / "demote" when a person overruled the rules
    hair_color: str | None
    eye_colors: Any
    source_path: str | None
    row: dict[str, Any] = dataclasses.field(compare=False, repr=False)

    @classmethod
    def parse(cls, row: Any) -> CropRow:
        crop_id = row.get("id") if isinstance(row, dict) else None
        if not isinstance(crop_id, str) or not crop_id:
            raise RowError("manifest row without an id")
        return cls(
            id=crop_id,
            source_sha256=row.get("source_sha256") if isinstance(row.get("source_sha256"), str) else "",
            decision=_str_or_none(row.get("decision")),
            reason=_str_or_none(row.get("reason")),
            path=_str_or_none(row.get("path")),
            override=_str_or_none(row.get("override")),
            hair_color=_str_or_none(row.get("hair_color")),
            eye_colors=row.get("eye_colors"),
            source_path=_str_or_none(row.get("source_path")),
            row=row,
        )

    @property
    def accepted(self) -> bool:
        return self.decision == "accepted"

    @property
    def is_detection(self) -> bool:
        """A row for a detected face (not an image-level row such as a decode error)."""
        return bool(self.row.get("box"))

    @property
    def face_area(self) -> int:
        """Source face size in pixels: the detection box when present, else the crop side squared."""
        box = self.row.get("box")
        if isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
            return int(box[2]) * int(box[3])
        size = self.row.get("size")
        return int(size) ** 2 if isinstance(size, int | float) else 0


@dataclasses.dataclass(frozen=True)
class FaceRow:
    id: str  # the crop id the face keeps, so any shard row traces back to its URL
    path: str  # faces64/<id>.png
    source_sha256: str
    source_path: str | None
    cluster_id: str
    cluster_size: int
    duplicates: list[str]  # the other members of its cluster, dropped in its favour
    kept_because: str
    hashes: dict[str, str]  # <hash kind>, dhash, pixel_sha256, thumb_sha256
    hash_kind: str
    hash_bits: int
    face_area: int
    crop_side: int
    sharpness: float
    hair_color: str | None
    eye_colors: Any

    def to_row(self) -> dict[str, Any]:
        return {"crop_id": self.id, **dataclasses.asdict(self)}

    @classmethod
    def parse(cls, row: Any) -> FaceRow:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise RowError("faces64 manifest row without an id")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in row]
        if missing:
            raise RowError(f"faces64 row {row['id']} lacks {', '.join(missing)}")
        return cls(**{name: row[name] for name in names})

    @property
    def thumb_sha256(self) -> str:
        return str(self.hashes.get("thumb_sha256", ""))


def read_rows(path: Path, parse: Any) -> tuple[list[Any], list[tuple[int, str]]]:
    """Parse every row of a manifest with `parse`; returns (rows, [(line, why) for unusable rows])."""
    rows, bad = [], []
    for number, value in atomic.iter_jsonl(path):
        try:
            rows.append(parse(value))
        except RowError as exc:
            bad.append((number, str(exc)))
    return rows, bad
