"""A person's promote/demote decisions: an append-only log that outranks every rule.

The log (`crops/overrides.jsonl`, rows {id, action, reason, at}) is the only copy of a
human decision, so it is only ever appended to; the last row for an id wins. Rows are
kept for ids that no longer exist, so a decision comes back if the crop does.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from pipeline import atomic

ACTIONS = ("promote", "demote")
REASON_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DEFAULT_DEMOTE_REASON = "manual"


def overrides_path(data_dir: Path) -> Path:
    return data_dir / "crops" / "overrides.jsonl"


def read_overrides(data_dir: Path) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for row in atomic.read_jsonl(overrides_path(data_dir)):
        if isinstance(row, dict) and row.get("action") in ACTIONS and isinstance(row.get("id"), str):
            latest[row["id"]] = row
    return latest


def record(data_dir: Path, crop_id: str, action: str, reason: str | None) -> dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    row = {
        "id": crop_id,
        "action": action,
        "reason": reason if action == "demote" else None,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic.append_jsonl(overrides_path(data_dir), row)
    return row


def check_reason(reason: str) -> str:
    """Demote reasons become directory names under rejects/, so they are kept to a safe alphabet."""
    if not REASON_PATTERN.match(reason):
        raise ValueError(
            f"reason {reason!r} must be 1-40 characters of a-z, 0-9, '_' or '-' (it names a folder under rejects/)"
        )
    return reason


def crop_path(crop_id: str, decision: str, reason: str | None) -> str:
    """Where a crop lives, relative to DATA: accepted in crops/, rejected under its reason."""
    if decision == "accepted":
        return f"crops/{crop_id}.png"
    return f"rejects/{reason}/{crop_id}.png"


def apply(row: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest row a person sees: the automatic decision unless they overruled it.

    Works on stored rows and on manifest rows alike, because both keep the automatic
    decision in `auto_decision`/`auto_reason`.
    """
    out = dict(row)
    out["decision"], out["reason"], out["override"] = row["auto_decision"], row["auto_reason"], None
    if override is not None and row.get("crop_box") is not None:
        if override["action"] == "promote":
            out["decision"], out["reason"] = "accepted", None
        else:
            out["decision"], out["reason"] = "rejected", override.get("reason") or DEFAULT_DEMOTE_REASON
        out["override"] = override["action"]
    if out.get("crop_box") is not None:
        out["path"] = crop_path(out["id"], out["decision"], out["reason"])
    return out
