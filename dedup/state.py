"""The stage's memory between runs, in SQLite: fingerprints, which contents were searched, near pairs.

SQLite because this state changes on every run and must survive a kill -9 at any instant:
fingerprints are committed in batches as workers finish, so an interrupted run re-hashes
only what was not committed. Near pairs are stored between pixel contents (not crop ids),
so a pair found once stays valid while any crop with those pixels is still in the corpus.
Changing a hashing setting empties everything; changing a matching setting empties the
pairs, so the next run recomputes exactly what the new settings affect. Everything here can be
recomputed from the crops, so a damaged file is rebuilt (`pipeline.statedb`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path

from dedup.fingerprint import Fingerprint
from pipeline import statedb
from pipeline.ledger import Ledger

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prints (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, error TEXT, pixel_sha256 TEXT, width INTEGER, height INTEGER,
    hash_hex TEXT, dhash_hex TEXT, gray_std REAL, sharpness REAL, thumb_sha256 TEXT, colour_hex TEXT,
    thumb_row INTEGER);
CREATE INDEX IF NOT EXISTS prints_pixels ON prints (pixel_sha256);
CREATE TABLE IF NOT EXISTS searched (pixel_sha256 TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS pairs (
    a TEXT NOT NULL, b TEXT NOT NULL, distance INTEGER NOT NULL, dhash_distance INTEGER NOT NULL,
    PRIMARY KEY (a, b));
"""

logger = logging.getLogger(__name__)

FIELDS = (
    "id",
    "path",
    "error",
    "pixel_sha256",
    "width",
    "height",
    "hash_hex",
    "dhash_hex",
    "gray_std",
    "sharpness",
    "thumb_sha256",
    "colour_hex",
    "thumb_row",
)


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = statedb.connect(path, cache=True, redo="every crop is hashed again")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            # A state file from another version of this stage: start over rather than misread it.
            with self.db:
                for table in ("meta", "prints", "searched", "pairs"):
                    self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.db.executescript(SCHEMA)
        self.faces = Ledger(self.db, "faces64_files")  # by crop id: the faces64 PNGs this stage wrote

    def close(self) -> None:
        self.db.close()

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def reconcile(self, hashing_key: dict, matching_key: dict) -> tuple[bool, bool]:
        """Drop what the current settings invalidate; returns (rehash_all, research_all)."""
        hashing, matching = json.dumps(hashing_key, sort_keys=True), json.dumps(matching_key, sort_keys=True)
        rehash = self._meta("hashing") not in (None, hashing)
        research = rehash or self._meta("matching") not in (None, matching)
        if not research and not self._pairs_read_back():
            logger.warning(
                "%s: a stored near pair did not read back (damaged); searching every face again", self.path
            )
            research = True
        with self.db:
            if rehash:
                self.db.execute("DELETE FROM prints")
            if research:
                self.db.execute("DELETE FROM searched")
                self.db.execute("DELETE FROM pairs")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('hashing', ?)", (hashing,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('matching', ?)", (matching,))
        return rehash, research

    def prints(self) -> dict[str, dict]:
        """Every fingerprint by crop id; one that does not read back whole (damage inside the file) is
        forgotten, so its crop is hashed again, and the pairs are searched again."""
        cursor = self.db.execute(f"SELECT {', '.join(FIELDS)} FROM prints")
        records = [dict(zip(FIELDS, row, strict=True)) for row in cursor]
        bad = [rec["id"] for rec in records if not _valid_print(rec)]
        if bad:
            logger.warning(
                "%s: %d fingerprint(s) did not read back (damaged); hashing those crops again",
                self.path,
                len(bad),
            )
            with self.db:
                self.db.executemany("DELETE FROM prints WHERE id = ?", ((i,) for i in bad))
                self.db.execute("DELETE FROM searched")
                self.db.execute("DELETE FROM pairs")
        return {rec["id"]: rec for rec in records if rec["id"] not in set(bad)}

    def forget(self, ids: Iterable[str]) -> None:
        """Forget fingerprints that must be recomputed (the crop moved, or was missing before)."""
        with self.db:
            self.db.executemany("DELETE FROM prints WHERE id = ?", ((i,) for i in ids))

    def cache_stamp(self) -> str | None:
        """thumbs.u8's size and mtime as this stage last left it (`ThumbCache.stamp`)."""
        return self._meta("thumbs_stamp")

    def set_cache_stamp(self, stamp: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('thumbs_stamp', ?)", (stamp,))

    def forget_thumbs(self, rows_on_disk: int, damaged_rows: Iterable[int] = ()) -> int:
        """Forget the fingerprints whose thumbnail row is past the end of the cache file (it was
        truncated) or damaged, so they are hashed again; returns how many."""
        bad = set(damaged_rows)
        lost = [
            crop_id
            for crop_id, row in self.db.execute(
                "SELECT id, thumb_row FROM prints WHERE thumb_row IS NOT NULL"
            )
            if row >= rows_on_disk or row in bad
        ]
        self.forget(lost)
        return len(lost)

    def next_thumb_row(self) -> int:
        """The first cache row no fingerprint points at (rows past it are leftovers of a killed run)."""
        row = self.db.execute("SELECT max(thumb_row) FROM prints").fetchone()[0]
        return 0 if row is None else row + 1

    def save_prints(self, items: Iterable[tuple[str, Fingerprint, int | None]]) -> None:
        rows = [
            (
                fp.crop_id,
                path,
                fp.error,
                fp.pixel_sha256,
                fp.width,
                fp.height,
                fp.hash_hex,
                fp.dhash_hex,
                fp.gray_std,
                fp.sharpness,
                fp.thumb_sha256,
                fp.colour_hex,
                row,
            )
            for path, fp, row in items
        ]
        with self.db:
            self.db.executemany(
                f"INSERT OR REPLACE INTO prints VALUES ({', '.join('?' * len(FIELDS))})", rows
            )

    def searched(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT pixel_sha256 FROM searched")}

    def save_search(self, searched: Iterable[str], pairs: Iterable[tuple[str, str, int, int]]) -> None:
        """Record new pairs and mark their query contents searched, in one transaction, so a kill
        leaves either both or neither."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?)",
                ((min(a, b), max(a, b), d, d2) for a, b, d, d2 in pairs),
            )
            self.db.executemany("INSERT OR IGNORE INTO searched VALUES (?)", ((s,) for s in searched))

    def pairs(self) -> list[tuple[str, str, int, int]]:
        return list(self.db.execute("SELECT a, b, distance, dhash_distance FROM pairs"))

    def _pairs_read_back(self) -> bool:
        return all(
            _hex(a, 64) and _hex(b, 64) and isinstance(d, int) and isinstance(d2, int)
            for a, b, d, d2 in self.pairs()
        )


_HEX = re.compile(r"^[0-9a-f]+$")


def _hex(value: object, length: int | None = None) -> bool:
    return isinstance(value, str) and bool(_HEX.match(value)) and (length is None or len(value) == length)


def _valid_print(rec: dict) -> bool:
    """A fingerprint as `save_prints` wrote it: an error, or every hash and measure in its shape."""
    if not isinstance(rec["id"], str) or not isinstance(rec["path"], str):
        return False
    if rec["error"] is not None:
        return isinstance(rec["error"], str)
    numbers = (rec["gray_std"], rec["sharpness"])
    return (
        _hex(rec["pixel_sha256"], 64)
        and _hex(rec["thumb_sha256"], 64)
        and _hex(rec["hash_hex"])
        and _hex(rec["dhash_hex"], 16)
        and _hex(rec["colour_hex"])
        and len(rec["colour_hex"]) % 2 == 0
        and all(isinstance(v, int | float) and math.isfinite(v) for v in numbers)
        and all(isinstance(v, int) and v >= 0 for v in (rec["width"], rec["height"], rec["thumb_row"]))
    )
