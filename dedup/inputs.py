"""Reading what facecrop (and the crawler) left in DATA: the accepted crops and a person's overrides.

Only rows decided `accepted` are candidates. A crop a person demoted stays out for as long
as the demotion stands - whether facecrop recorded it in its manifest (`override`) or only
in `crops/overrides.jsonl` - so a re-run of facecrop or of this stage can never bring it back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.atomic import read_jsonl

NO_CROPS = "no accepted crops in {manifest}: run facecrop first, or see make rejects"


class InputError(RuntimeError):
    """The inputs cannot be used at all; the message is the one line the user sees."""


@dataclasses.dataclass(frozen=True)
class Crop:
    id: str
    source_sha256: str
    path: str  # relative to DATA
    face_area: int  # source pixels of the detected face: the first keep-best criterion
    hair_color: str | None
    eye_colors: Any
    source_path: str | None
    row: dict[str, Any]


@dataclasses.dataclass
class Inputs:
    crops: list[Crop]  # accepted, not demoted, one per id, sorted by id
    demoted: set[str]  # every id a person demoted (latest word wins)
    malformed: list[tuple[str, str]]  # (id or line, reason) rows that could not be used
    sources: dict[str, dict[str, Any]]  # raw manifest rows by sha256, for the report


def face_area(row: dict[str, Any]) -> int:
    """Source face size in pixels: the detection box when present, else the crop side squared."""
    box = row.get("box")
    if isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
        return int(box[2]) * int(box[3])
    size = row.get("size")
    return int(size) ** 2 if isinstance(size, int | float) else 0


def latest_overrides(data_dir: Path) -> dict[str, str]:
    """id -> the latest action a person took (the overrides file is an append-only log)."""
    actions: dict[str, str] = {}
    for row in read_jsonl(data_dir / "crops" / "overrides.jsonl"):
        if isinstance(row, dict) and isinstance(row.get("id"), str) and row.get("action") in ("promote", "demote"):
            actions[row["id"]] = row["action"]
    return actions


def read_inputs(data_dir: Path) -> Inputs:
    manifest = data_dir / "crops" / "manifest.jsonl"
    overrides = latest_overrides(data_dir)
    demoted = {cid for cid, action in overrides.items() if action == "demote"}
    malformed: list[tuple[str, str]] = []
    chosen: dict[str, Crop] = {}
    for row in read_jsonl(manifest):
        cid = row.get("id") if isinstance(row, dict) else None
        if not isinstance(cid, str) or not cid:
            malformed.append((str(row)[:80], "manifest row without an id"))
            continue
        if row.get("override") == "demote" and overrides.get(cid) != "promote":
            demoted.add(cid)
        if cid in demoted or row.get("decision") != "accepted":
            chosen.pop(cid, None)  # a later row for the same id replaces an earlier one
            continue
        path = row.get("path")
        if not isinstance(path, str) or not path or Path(path).is_absolute() or ".." in Path(path).parts:
            malformed.append((cid, f"path {path!r} is not a relative path inside DATA"))
            continue
        source = row.get("source_sha256")
        chosen[cid] = Crop(
            id=cid,
            source_sha256=source if isinstance(source, str) else "",
            path=path,
            face_area=face_area(row),
            hair_color=row.get("hair_color") if isinstance(row.get("hair_color"), str) else None,
            eye_colors=row.get("eye_colors"),
            source_path=row.get("source_path") if isinstance(row.get("source_path"), str) else None,
            row=row,
        )
    if not chosen:
        raise InputError(NO_CROPS.format(manifest=manifest))
    sources = {}
    for row in read_jsonl(data_dir / "raw" / "manifest.jsonl"):
        if isinstance(row, dict) and isinstance(row.get("sha256"), str):
            sources[row["sha256"]] = row
    return Inputs(crops=sorted(chosen.values(), key=lambda c: c.id), demoted=demoted,
                  malformed=malformed, sources=sources)
