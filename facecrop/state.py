"""What has been done: per source, the settings fingerprint and its automatic rows, in SQLite.

SQLite (not the manifest) holds progress because it commits many small updates atomically:
a kill between commits loses only the uncommitted sources, which the next run redoes and
whose crop files it simply rewrites under the same names.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.layout import Layout

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    sha256 TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rows TEXT NOT NULL
)
"""


class State:
    def __init__(self, data_dir: Path):
        path = Layout(data_dir).facecrop_state
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
        self.db.commit()

    def load(self) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        return {
            sha: (fingerprint, json.loads(rows))
            for sha, fingerprint, rows in self.db.execute("SELECT sha256, fingerprint, rows FROM sources")
        }

    def save(self, results: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        """Record finished sources in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO sources (sha256, fingerprint, rows) VALUES (?, ?, ?)",
                [(sha, fp, json.dumps(rows, sort_keys=True)) for sha, fp, rows in results],
            )

    def close(self) -> None:
        self.db.close()
