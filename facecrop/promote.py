"""`promote` / `demote`: a person's decision, visible to dedup at once, and kept by every later run.

Order matters for kill-safety: the decision is appended to the log first (so it can never
be lost), then the crop file is moved and the manifest rewritten. If a kill lands between
those steps, the next run (or the next promote/demote) finishes the move from the log.
The append is `pipeline.decisions.record_overrides`, the same call the review app makes, so
the two write one row format under one lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facecrop import manifest, rejects_page
from facecrop.config import Thresholds
from pipeline import decisions
from pipeline.errors import ConfigError, InputMissing, PipelineError
from pipeline.layout import Layout


class OverruleError(PipelineError):
    """An id the manifest does not know, or a row without a crop to move."""


def overrule(
    data_dir: Path, ids: list[str], action: str, reason: str | None, thresholds: Thresholds
) -> list[dict[str, Any]]:
    rows = manifest.read_manifest(data_dir)
    if not rows:
        raise InputMissing(
            f"no crops manifest at {Layout(data_dir).crops_manifest}: run `python -m facecrop` first"
        )
    by_id = {row["id"]: row for row in rows}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise OverruleError(f"unknown crop id(s): {', '.join(unknown)} (see `python -m facecrop rejects`)")
    no_crop = [i for i in ids if by_id[i].get("crop_box") is None]
    if no_crop:
        raise OverruleError(f"no crop to {action} for image-level rows: {', '.join(no_crop)}")
    if action == "demote":
        try:
            reason = decisions.check_reason(reason or decisions.DEFAULT_DEMOTE_REASON)
        except decisions.BadDecision as exc:
            raise ConfigError(f"--reason: {exc}") from exc
    decisions.record_overrides(data_dir, [(crop_id, action, reason) for crop_id in dict.fromkeys(ids)])
    latest = decisions.read_overrides(data_dir)
    updated = manifest.final_rows(rows, latest)
    files = manifest.crop_files(data_dir)
    missing = manifest.place_files(data_dir, updated, files)
    changed = [row for row in updated if row["id"] in ids]
    lost = [i for i in missing if i in ids]
    manifest.write_manifest(data_dir, updated)
    rejects_page.build(data_dir, updated, thresholds)
    if lost:
        raise OverruleError(
            f"recorded, but the crop file of {', '.join(lost)} is missing; the next `python -m facecrop` run recreates it"
        )
    return changed
