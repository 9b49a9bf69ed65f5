"""What has been done: per source, the settings fingerprint and its automatic rows, in SQLite.

SQLite (not the manifest) holds progress because it commits many small updates atomically:
a kill between commits loses only the uncommitted sources, which the next run redoes and
whose crop files it simply rewrites under the same names. The file only saves work (every
row can be redone from the raw images), so a damaged one is rebuilt (`pipeline.statedb`), and
a stored row that does not read back is simply redone.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from pipeline import statedb
from pipeline.decisions import REASON_PATTERN
from pipeline.layout import Layout
from pipeline.ledger import Ledger

logger = logging.getLogger(__name__)

CROP_ID = re.compile(r"^[0-9a-f]{12}_(image|\d+_\d+_\d+_\d+|-?\d+_-?\d+_\d+_\d+_r\d+)$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    sha256 TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rows TEXT NOT NULL
)
"""


class State:
    def __init__(self, data_dir: Path):
        self.path = Layout(data_dir).facecrop_state
        self.db = statedb.connect(self.path, cache=True, redo="every image is detected again")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
        self.db.commit()
        self.crop_files = Ledger(self.db, "crop_files")  # by crop id: the PNGs this stage wrote
        self.raw_files = Ledger(self.db, "raw_files")  # by sha256: the crawler's images this stage read

    def load(self) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """sha256 -> (fingerprint, rows); a source whose stored rows do not read back is left out (redone)."""
        stored, unreadable = {}, 0
        for sha, fingerprint, rows in self.db.execute("SELECT sha256, fingerprint, rows FROM sources"):
            try:
                value = json.loads(rows)
            except (TypeError, ValueError, RecursionError):
                value = None
            if not (
                isinstance(sha, str)
                and isinstance(fingerprint, str)
                and isinstance(value, list)
                and all(_valid_row(sha, row) for row in value)
            ):
                unreadable += 1
                continue
            stored[sha] = (fingerprint, value)
        if unreadable:
            logger.warning(
                "%s: %d stored result(s) did not read back (damaged); those images are detected again",
                self.path,
                unreadable,
            )
        return stored

    def save(self, results: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        """Record finished sources in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO sources (sha256, fingerprint, rows) VALUES (?, ?, ?)",
                [(sha, fp, json.dumps(rows, sort_keys=True)) for sha, fp, rows in results],
            )

    def close(self) -> None:
        self.db.close()


def _valid_row(sha: str, row: object) -> bool:
    """A stored row as a worker made it: its id and automatic verdict (which name its file) in their shapes."""
    if not isinstance(row, dict):
        return False
    crop_id, reason = row.get("id"), row.get("auto_reason")
    return (
        isinstance(crop_id, str)
        and bool(CROP_ID.match(crop_id))
        and crop_id.startswith(sha[:12])
        and row.get("auto_decision") in ("accepted", "rejected")
        and (reason is None or (isinstance(reason, str) and bool(REASON_PATTERN.match(reason))))
    )
