"""Reading what facecrop (and the crawler) left in DATA: the accepted crops and a person's overrides.

Only rows decided `accepted` are candidates. A crop a person demoted stays out for as long
as the demotion stands - whether facecrop recorded it in its manifest (`override`) or only
in `crops/overrides.jsonl` - so a re-run of facecrop or of this stage can never bring it back.
The row formats and the overrides log are `pipeline.manifests` and `pipeline.decisions`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.decisions import read_overrides
from pipeline.errors import InputMissing
from pipeline.layout import Layout
from pipeline.manifests import CropRow, RawImage, read_rows, safe_relative

NO_MANIFEST = "no crops manifest at {manifest}: run facecrop first (`make facecrop`, or `make dataset`)"
NO_CROPS = "no accepted crops in {manifest}: run facecrop first, or see make rejects"


class InputError(InputMissing):
    """The inputs cannot be used at all; the message is the one line the user sees."""


@dataclasses.dataclass
class Inputs:
    crops: list[CropRow]  # accepted, not demoted, one per id, sorted by id
    demoted: set[str]  # every id a person demoted (latest word wins)
    malformed: list[tuple[str, str]]  # (id or file:line, reason) rows that could not be used
    sources: dict[str, dict[str, Any]]  # raw manifest rows by sha256, for the report


def read_inputs(data_dir: Path) -> Inputs:
    layout = Layout(data_dir)
    manifest = layout.crops_manifest
    if not manifest.is_file():
        raise InputError(NO_MANIFEST.format(manifest=manifest))
    overrides = {cid: d.action for cid, d in read_overrides(data_dir).items()}
    demoted = {cid for cid, action in overrides.items() if action == "demote"}
    rows, bad = read_rows(manifest, CropRow.parse)
    malformed = [(f"{manifest}:{line}", why) for line, why in bad]
    chosen: dict[str, CropRow] = {}
    for crop in rows:
        if crop.override == "demote" and overrides.get(crop.id) != "promote":
            demoted.add(crop.id)
        if crop.id in demoted or not crop.accepted:
            chosen.pop(crop.id, None)  # a later row for the same id replaces an earlier one
            continue
        if safe_relative(crop.path) is None:
            malformed.append((crop.id, f"path {crop.path!r} is not a relative path inside DATA"))
            continue
        chosen[crop.id] = crop
    if not chosen:
        raise InputError(NO_CROPS.format(manifest=manifest))
    return Inputs(
        crops=sorted(chosen.values(), key=lambda c: c.id),
        demoted=demoted,
        malformed=malformed,
        sources=raw_sources(layout),
    )


def raw_sources(layout: Layout) -> dict[str, dict[str, Any]]:
    """The crawler's rows by sha256 (for the report's titles and URLs); unusable rows are simply absent."""
    return {image.sha256: image.row for image in read_rows(layout.raw_manifest, RawImage.parse)[0]}
