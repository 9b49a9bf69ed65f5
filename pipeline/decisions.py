"""A person's decision logs: `crops/overrides.jsonl` (promote/demote) and `dedup/decisions.jsonl`.

A log is the only copy of a human decision, so it is only ever appended to (one fsynced
line per decision) and never rewritten; the last row for an id wins. Rows are kept for ids
that no longer exist, so a decision comes back if the crop does. Every writer (the CLI,
the review app) and every reader (facecrop, dedup) goes through this module: one row
format, one parser. A row that does not validate is skipped with a warning naming the
file and line, never half-applied.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from pipeline import atomic
from pipeline.layout import Layout

logger = logging.getLogger(__name__)

OVERRIDE_ACTIONS = ("promote", "demote")
# dedup decisions: "split" = not a duplicate of its cluster, "keep" = keep this member instead.
DEDUP_ACTIONS = ("split", "keep")
REASON_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DEFAULT_DEMOTE_REASON = "manual"


@dataclasses.dataclass(frozen=True)
class Decision:
    id: str
    action: str
    reason: str | None = None  # demote only: names the folder under rejects/
    at: str | None = None  # ISO 8601 UTC

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "reason": self.reason, "at": self.at}


class BadDecision(ValueError):
    """A decision that cannot be recorded (the message says which part and why)."""


class BadReason(BadDecision):
    """A demote reason that cannot name a folder; the demotion itself still stands when read back."""


def check_reason(reason: str) -> str:
    """Demote reasons become directory names under rejects/, so they are kept to a safe alphabet."""
    if not isinstance(reason, str) or not REASON_PATTERN.match(reason):
        raise BadReason(
            f"reason {reason!r} must be 1-40 characters of a-z, 0-9, '_' or '-' (it names a folder under rejects/)"
        )
    return reason


def parse(row: Any, actions: tuple[str, ...]) -> Decision:
    """One log row as a Decision, or BadDecision saying what is wrong with it."""
    if not isinstance(row, dict):
        raise BadDecision(f"expected an object, got {type(row).__name__}")
    crop_id, action, reason, at = row.get("id"), row.get("action"), row.get("reason"), row.get("at")
    if not isinstance(crop_id, str) or not crop_id:
        raise BadDecision(f"'id' must be a non-empty string, got {crop_id!r}")
    if action not in actions:
        raise BadDecision(f"'action' must be one of {', '.join(actions)}, got {action!r}")
    if reason is not None:
        check_reason(reason)
    if at is not None and not isinstance(at, str):
        raise BadDecision(f"'at' must be a string, got {at!r}")
    return Decision(crop_id, action, reason if action == "demote" else None, at)


def read_log(path: Path, actions: tuple[str, ...]) -> dict[str, Decision]:
    """id -> its latest valid decision ({} when the log does not exist yet).

    A demotion whose reason cannot name a folder is still a demotion (dropping it would bring
    back a face a person removed); it is read with the default reason, and a warning.
    """
    latest: dict[str, Decision] = {}
    for number, row in atomic.iter_jsonl(path):
        try:
            try:
                decision = parse(row, actions)
            except BadReason as exc:
                logger.warning("%s:%d: %s; read as %r", path, number, exc, DEFAULT_DEMOTE_REASON)
                decision = parse({**row, "reason": DEFAULT_DEMOTE_REASON}, actions)
        except BadDecision as exc:
            logger.warning("%s:%d: skipping a decision row: %s", path, number, exc)
            continue
        latest[decision.id] = decision
    return latest


def append(path: Path, crop_id: str, action: str, reason: str | None, actions: tuple[str, ...]) -> Decision:
    """Validate and durably append one decision; returns it as recorded."""
    decision = parse({"id": crop_id, "action": action, "reason": reason,
                      "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}, actions)
    atomic.append_jsonl(path, decision.to_row())
    return decision


def read_overrides(data_dir: Path) -> dict[str, Decision]:
    return read_log(Layout(data_dir).overrides_log, OVERRIDE_ACTIONS)


def record_override(data_dir: Path, crop_id: str, action: str, reason: str | None = None) -> Decision:
    if action == "demote":
        reason = check_reason(reason or DEFAULT_DEMOTE_REASON)
    return append(Layout(data_dir).overrides_log, crop_id, action, reason, OVERRIDE_ACTIONS)


def read_dedup_decisions(data_dir: Path) -> dict[str, Decision]:
    return read_log(Layout(data_dir).dedup_decisions_log, DEDUP_ACTIONS)


def record_dedup_decision(data_dir: Path, crop_id: str, action: str) -> Decision:
    return append(Layout(data_dir).dedup_decisions_log, crop_id, action, None, DEDUP_ACTIONS)
