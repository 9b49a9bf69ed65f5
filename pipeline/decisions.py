"""A person's decision logs: `crops/overrides.jsonl` (promote/demote) and `dedup/decisions.jsonl`.

A log is the only copy of a human decision, so it is only ever appended to (one fsynced
line per decision) and never rewritten; the last row for an id wins. Rows are kept for ids
that no longer exist, so a decision comes back if the crop does. Every writer (the CLI,
the review app) and every reader (facecrop, dedup) goes through this module: one row
format, one parser. A row that does not validate is skipped with a warning naming the
file and line, never half-applied.

Writers append a batch as whole lines in one write under an exclusive `flock` on the log,
and readers read under a shared one, so two writers (two review tabs, the CLI beside the
app) never interleave and a stage reading at the same moment waits for the batch and never
sees half of it. A `clear` row withdraws a person's decision (the review app's undo of a
first decision): readers then see no decision for that id, as if none had been made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline import atomic
from pipeline.layout import Layout

logger = logging.getLogger(__name__)

CLEAR = "clear"  # withdraws the id's decision: the rules (or the hashes) decide again
OVERRIDE_ACTIONS = ("promote", "demote", CLEAR)
# dedup decisions: "split" = not a duplicate of its cluster, "keep" = keep this member instead.
DEDUP_ACTIONS = ("split", "keep", CLEAR)
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


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[int | None]:
    """An flock on the log itself (shared for readers, exclusive for writers); None when a reader finds no log."""
    if exclusive:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield None
            return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def read_log(path: Path, actions: tuple[str, ...]) -> dict[str, Decision]:
    """id -> its latest valid decision ({} when the log does not exist yet), `clear` rows included.

    A demotion whose reason cannot name a folder is still a demotion (dropping it would bring
    back a face a person removed); it is read with the default reason, and a warning.
    """
    latest: dict[str, Decision] = {}
    with _locked(path, exclusive=False):
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


def read_new(path: Path, actions: tuple[str, ...], offset: int = 0) -> tuple[dict[str, Decision], int]:
    """The valid decisions in the complete lines after byte `offset`, and the offset after them.

    The logs only grow, so a long-running reader (the review app) reads each line once:
    it passes back the offset it got and receives only what was appended since. A line
    without its newline yet is left for the next call. Returns offset 0 and a full read when
    the log shrank or was replaced (someone rewrote it by hand).
    """
    latest: dict[str, Decision] = {}
    with _locked(path, exclusive=False) as fd:
        if fd is None:
            return latest, 0
        size = os.fstat(fd).st_size
        if size < offset:
            offset = 0
        data = os.pread(fd, size - offset, offset) if size > offset else b""
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            try:
                decision = parse(row, actions)
            except BadReason:
                decision = parse({**row, "reason": DEFAULT_DEMOTE_REASON}, actions)
        except (ValueError, RecursionError) as exc:  # BadDecision and JSONDecodeError are ValueErrors
            logger.warning("%s: skipping a decision row: %s", path, exc)
            continue
        latest[decision.id] = decision
    return latest, offset + end


def standing(latest: dict[str, Decision]) -> dict[str, Decision]:
    """The decisions in force: a `clear` row means the id has none."""
    return {key: decision for key, decision in latest.items() if decision.action != CLEAR}


def append_many(
    path: Path, items: Iterable[tuple[str, str, str | None]], actions: tuple[str, ...]
) -> list[Decision]:
    """Validate every (id, action, reason) first, then append them all as one durable write.

    Nothing is written when any item is invalid, so a batch is recorded whole or not at all.
    """
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    recorded = [
        parse({"id": crop_id, "action": action, "reason": reason, "at": now}, actions)
        for crop_id, action, reason in items
    ]
    if not recorded:
        return []
    data = "".join(
        json.dumps(d.to_row(), ensure_ascii=False, sort_keys=True) + "\n" for d in recorded
    ).encode()
    with _locked(path, exclusive=True) as fd:
        assert fd is not None
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a writer was killed mid-line: the new rows start on lines of their own
        os.write(fd, data)
        os.fsync(fd)
    return recorded


def append(path: Path, crop_id: str, action: str, reason: str | None, actions: tuple[str, ...]) -> Decision:
    """Validate and durably append one decision; returns it as recorded."""
    return append_many(path, [(crop_id, action, reason)], actions)[0]


def _override_item(crop_id: str, action: str, reason: str | None) -> tuple[str, str, str | None]:
    if action == "demote":
        return crop_id, action, check_reason(reason or DEFAULT_DEMOTE_REASON)
    return crop_id, action, None


def read_overrides(data_dir: Path) -> dict[str, Decision]:
    """The promote/demote decisions in force, by crop id (what facecrop and dedup apply)."""
    return standing(read_log(Layout(data_dir).overrides_log, OVERRIDE_ACTIONS))


def record_overrides(data_dir: Path, items: Iterable[tuple[str, str, str | None]]) -> list[Decision]:
    """Append (id, promote|demote|clear, reason) decisions as one batch: the CLI and the review app both write here."""
    checked = [_override_item(*item) for item in items]
    return append_many(Layout(data_dir).overrides_log, checked, OVERRIDE_ACTIONS)


def record_override(data_dir: Path, crop_id: str, action: str, reason: str | None = None) -> Decision:
    return record_overrides(data_dir, [(crop_id, action, reason)])[0]


def read_dedup_decisions(data_dir: Path) -> dict[str, Decision]:
    """The split/keep decisions in force, by crop id (what dedup applies to its clusters)."""
    return standing(read_log(Layout(data_dir).dedup_decisions_log, DEDUP_ACTIONS))


def record_dedup_decisions(data_dir: Path, items: Iterable[tuple[str, str]]) -> list[Decision]:
    """Append (id, split|keep|clear) decisions as one batch."""
    return append_many(Layout(data_dir).dedup_decisions_log, [(i, a, None) for i, a in items], DEDUP_ACTIONS)


def record_dedup_decision(data_dir: Path, crop_id: str, action: str) -> Decision:
    return record_dedup_decisions(data_dir, [(crop_id, action)])[0]
