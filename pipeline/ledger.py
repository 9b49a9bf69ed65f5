"""What a stage wrote (or read) under DATA, file by file, so a re-run notices silent damage.

A table in the stage's own SQLite state: key -> (size, mtime, sha256) of the file as it was
when the stage finished with it. A re-run checks each file cheaply (it exists, same size,
same mtime; only a file whose mtime moved is hashed again), and `--verify` hashes every one.
A file that fails is reported by key, and the stage redoes what produced it. A key with no
record yet (a state from before this table, or a rebuilt one) is recorded as it is found.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pipeline.digest import file_digest


@dataclasses.dataclass(frozen=True)
class Checked:
    """The outcome of `Ledger.check`: keys whose file is missing, and keys whose file changed."""

    missing: list[str]
    damaged: list[str]

    @property
    def bad(self) -> list[str]:
        return sorted(self.missing + self.damaged)


class Ledger:
    def __init__(self, db: sqlite3.Connection, table: str) -> None:
        self.db, self.table = db, table
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, bytes INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
        )
        db.commit()

    def record(self, items: Iterable[tuple[str, Path]]) -> None:
        """Remember each file as it is now (a file that is gone is forgotten)."""
        rows, gone = [], []
        for key, path in items:
            try:
                stat = os.stat(path)
                rows.append((key, stat.st_size, stat.st_mtime_ns, file_digest(path)))
            except FileNotFoundError:
                gone.append((key,))
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?)", rows)
            self.db.executemany(f"DELETE FROM {self.table} WHERE key = ?", gone)

    def check(
        self, items: dict[str, Path], *, verify: bool = False, expected: dict[str, str] | None = None
    ) -> Checked:
        """Which of `items` (key -> file) are missing or no longer what was recorded.

        `expected` gives the sha256 a file must have whatever was recorded (content-addressed
        files); with `verify` every file is hashed, else only those whose size or mtime moved.
        """
        recorded = {
            key: (size, mtime, sha)
            for key, size, mtime, sha in self.db.execute(
                f"SELECT key, bytes, mtime_ns, sha256 FROM {self.table}"
            )
        }
        expected = expected or {}
        missing, damaged, seen = [], [], []
        for key, path in items.items():
            try:
                stat = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                missing.append(key)
                continue
            record = recorded.get(key)
            want = expected.get(key) or (record[2] if record else None)
            if record is not None and stat.st_size != record[0]:
                damaged.append(key)
                continue
            if want is None or not (verify or record is None or stat.st_mtime_ns != record[1]):
                if record is None:
                    seen.append((key, path))
                continue
            if file_digest(path) != want:
                damaged.append(key)
            elif record is None or stat.st_mtime_ns != record[1]:
                seen.append((key, path))  # touched or copied, but the same bytes
        self.record(seen)
        return Checked(sorted(missing), sorted(damaged))

    def refresh(self, items: dict[str, Path]) -> None:
        """Record the files among `items` that were (re)written since their record, or have none:
        called after a stage wrote them, so the next run's `check` knows them as they are now."""
        recorded = {
            key: (size, mtime)
            for key, size, mtime in self.db.execute(f"SELECT key, bytes, mtime_ns FROM {self.table}")
        }
        changed = []
        for key, path in items.items():
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            if recorded.get(key) != (stat.st_size, stat.st_mtime_ns):
                changed.append((key, path))
        self.record(changed)

    def forget(self, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany(f"DELETE FROM {self.table} WHERE key = ?", ((k,) for k in keys))
