"""What a person's promote/demote does to a crop's row: it outranks every rule.

The log itself (`crops/overrides.jsonl`: its rows, its parser, its appends) is the contract
in `pipeline.decisions`, shared with dedup and the review app; this module is facecrop's
reading of it. Overrides are applied once, when the manifest is published
(`manifest.final_rows`): workers write each crop where the rules put it, and publishing
moves the overruled ones.
"""

from __future__ import annotations

from typing import Any

from pipeline.decisions import DEFAULT_DEMOTE_REASON, Decision
from pipeline.layout import rel_crop, rel_reject


def crop_path(crop_id: str, decision: str, reason: str | None) -> str:
    """Where a crop lives, relative to DATA: accepted in crops/, rejected under its reason."""
    return rel_crop(crop_id) if decision == "accepted" else rel_reject(str(reason), crop_id)


def apply(row: dict[str, Any], override: Decision | None) -> dict[str, Any]:
    """The manifest row a person sees: the automatic decision unless they overruled it.

    Works on stored rows and on manifest rows alike, because both keep the automatic
    decision in `auto_decision`/`auto_reason`.
    """
    out = dict(row)
    out["decision"], out["reason"], out["override"] = row["auto_decision"], row["auto_reason"], None
    if override is not None and row.get("crop_box") is not None:
        if override.action == "promote":
            out["decision"], out["reason"] = "accepted", None
        else:
            out["decision"], out["reason"] = "rejected", override.reason or DEFAULT_DEMOTE_REASON
        out["override"] = override.action
    if out.get("crop_box") is not None:
        out["path"] = crop_path(out["id"], out["decision"], out["reason"])
    return out
