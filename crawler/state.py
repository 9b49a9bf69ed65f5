"""Crawl state in SQLite (WAL) at DATA/crawl.sqlite: what was listed, fetched, stored or failed.

SQLite rather than files because this state changes after every request; WAL keeps
each commit cheap and survives kill -9. One connection guarded by a lock serves all
download threads (the writes are tiny; the network is the bottleneck).

Tables:
  pages   one row per listing/detail page fetched: the JSON the site extracted from it,
          so a resumed crawl replays its listing without asking the site again.
  items   one row per (source, image URL): listing order, provenance, status
          (pending | stored | failed), failure reason, tries, resulting sha256, and the md5
          the site published for the post's original file (whichever file was fetched).
  images  one row per distinct stored image (sha256): path, size, format, and the md5 of
          its bytes. With the items' md5 it answers "is this picture stored already?" for
          a post of any site that publishes an md5, before anything is fetched.

A JSON column that does not parse (a person's edit, a bad copy) costs only that row, named
in one warning: a page is fetched again, an item's meta is taken again from its listing (its
manifest row has `meta` {} until then). Text that is not UTF-8 is damage to the whole file
(`pipeline.statedb`): one line, and the file is kept for a person to look at.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline import statedb

log = logging.getLogger("crawler")
BROKEN: Any = object()  # what `parse_json` returns for stored JSON that does not parse
_said: set[tuple[str, str, int]] = set()  # (file, table, rowid) already warned about in this process

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    key        TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    url        TEXT NOT NULL,
    result     TEXT NOT NULL,
    visited_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    source     TEXT NOT NULL,
    url        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    site       TEXT NOT NULL,
    page_url   TEXT NOT NULL,
    meta       TEXT NOT NULL,
    md5        TEXT,
    status     TEXT NOT NULL DEFAULT 'pending',
    reason     TEXT,
    detail     TEXT,
    tries      INTEGER NOT NULL DEFAULT 0,
    sha256     TEXT,
    fetched_at TEXT,
    PRIMARY KEY (source, url)
);
CREATE INDEX IF NOT EXISTS items_by_url ON items (url, status);
CREATE INDEX IF NOT EXISTS items_by_sha ON items (sha256);
CREATE TABLE IF NOT EXISTS images (
    sha256    TEXT PRIMARY KEY,
    path      TEXT NOT NULL,
    bytes     INTEGER NOT NULL,
    width     INTEGER NOT NULL,
    height    INTEGER NOT NULL,
    format    TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    md5       TEXT
);
"""
# After SCHEMA and the columns a state written before them lacks (added by `_migrate`).
INDEXES = """
CREATE INDEX IF NOT EXISTS items_by_md5 ON items (md5, status);
CREATE INDEX IF NOT EXISTS images_by_md5 ON images (md5);
"""


def parse_json(text: str) -> Any:
    """The stored JSON's value, or BROKEN (a nesting too deep for Python counts as broken too)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return BROKEN


class State:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not a cache (it alone remembers what failed and why): a damaged file stops the run, named.
        self._conn = statedb.connect(
            path, cache=False, check_same_thread=False, isolation_level=None, timeout=60
        )
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._conn.executescript(INDEXES)
        self._lock = threading.Lock()
        self._path = path
        self._redo_meta = self._sweep_broken_json()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        """A state written before images had an md5 gains the column; `store.backfill_md5` fills it."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(images)")}
        if "md5" not in columns:
            self._conn.execute("ALTER TABLE images ADD COLUMN md5 TEXT")

    def _unparsed(self, table: str, column: str, *also: str) -> list[tuple[Any, ...]]:
        """Rows of `table` whose JSON `column` does not parse: (rowid, *also).

        SQLite's json_valid picks the candidates without reading every row into Python (page results
        are large); each is confirmed with Python's parser, so a row json.loads reads is never lost.
        Reading a candidate's text also finds text that is not UTF-8, which stops the run as damage.
        """
        wanted = ", ".join(("rowid", column, *also))
        shape = f"json_type({column}) <> 'object'" if table == "items" else "0"
        try:
            rows = self._conn.execute(
                f"SELECT {wanted} FROM {table} WHERE CASE WHEN json_valid({column}) THEN {shape} ELSE 1 END"
            ).fetchall()
        except sqlite3.OperationalError:  # an SQLite built without JSON functions: read them all
            rows = self._conn.execute(f"SELECT {wanted} FROM {table}").fetchall()
        return [(row[0], *row[2:]) for row in rows if not _usable(table, parse_json(row[1]))]

    def _sweep_broken_json(self) -> set[tuple[str, str]]:
        """Say which stored JSON does not parse and arrange its redo; returns the items whose meta
        the listing must write again (see the module docstring)."""
        pages = self._unparsed("pages", "result")
        if pages:
            self._conn.executemany("DELETE FROM pages WHERE rowid = ?", [(rowid,) for (rowid,) in pages])
            self._say(
                "pages", [rowid for (rowid,) in pages], "result is not JSON", "each page is fetched again"
            )
        items = self._unparsed("items", "meta", "source", "url")
        self._say(
            "items",
            [rowid for rowid, _, _ in items],
            "meta is not a JSON object",
            "each is taken again from its source's listing; until then its manifest row has meta {}",
        )
        return {(source, url) for _, source, url in items}

    def _say(self, table: str, rowids: list[int], what: str, fix: str) -> None:
        """One warning per table naming the file and the rows (once per process: State opens twice a run)."""
        new = [rowid for rowid in rowids if (str(self._path), table, rowid) not in _said]
        if not new:
            return
        _said.update((str(self._path), table, rowid) for rowid in new)
        shown = ", ".join(str(rowid) for rowid in new[:10]) + (
            f" and {len(new) - 10} more" if len(new) > 10 else ""
        )
        log.warning("%s: table %s, row id %s: the stored %s; %s", self._path, table, shown, what, fix)

    # ------------------------------------------------------------------ pages

    def page_result(self, key: str) -> Any | None:
        with self._lock:
            row = self._conn.execute("SELECT result FROM pages WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        result = parse_json(row[0])
        return None if result is BROKEN else result  # fetched again, and saved over it

    def save_page(self, key: str, source: str, url: str, result: Any, visited_at: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO pages (key, source, url, result, visited_at) VALUES (?, ?, ?, ?, ?)",
                (key, source, url, json.dumps(result, ensure_ascii=False, sort_keys=True), visited_at),
            )

    # ------------------------------------------------------------------ items

    def add_item(
        self, source: str, url: str, seq: int, site: str, page_url: str, meta: dict, md5: str | None
    ) -> tuple[str, str | None]:
        """Record a listed image URL (keeping any earlier status); returns (status, reason)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO items (source, url, seq, site, page_url, meta, md5) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (source, url, seq, site, page_url, json.dumps(meta, ensure_ascii=False, sort_keys=True), md5),
            )
            if (source, url) in self._redo_meta:  # its stored meta did not parse: write the listing's
                self._redo_meta.discard((source, url))
                fresh = json.dumps(meta, ensure_ascii=False, sort_keys=True)
                self._conn.execute(
                    "UPDATE items SET meta = ? WHERE source = ? AND url = ?", (fresh, source, url)
                )
            row = self._conn.execute(
                "SELECT status, reason FROM items WHERE source = ? AND url = ?", (source, url)
            ).fetchone()
        return row[0], row[1]

    def stored_sha_for_md5(self, md5: str) -> str | None:
        """The stored image that is this picture: bytes with this md5, or the file (a resized variant,
        say) some post publishing this md5 was stored as."""
        with self._lock:
            row = self._conn.execute(
                "SELECT sha256 FROM images WHERE md5 = ?1"
                " UNION ALL SELECT sha256 FROM items WHERE md5 = ?1 AND status = 'stored' LIMIT 1",
                (md5.lower(),),
            ).fetchone()
        return None if row is None else row[0]

    def stored_sha_for_url(self, url: str) -> str | None:
        """The image some source already stored from exactly this URL, so it is not fetched twice."""
        with self._lock:
            row = self._conn.execute(
                "SELECT sha256 FROM items WHERE url = ? AND status = 'stored' LIMIT 1", (url,)
            ).fetchone()
        return None if row is None else row[0]

    def record_stored(
        self,
        source: str,
        url: str,
        sha256: str,
        fetched_at: str,
        image: dict[str, Any] | None = None,
    ) -> bool:
        """Mark an item stored (and register its image when new). Returns True if the image was new."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                new = False
                if image is not None:
                    cursor = self._conn.execute(
                        "INSERT OR IGNORE INTO images (sha256, path, bytes, width, height, format, stored_at, md5)"
                        " VALUES (:sha256, :path, :bytes, :width, :height, :format, :stored_at, :md5)",
                        {"md5": None, **image, "sha256": sha256, "stored_at": fetched_at},
                    )
                    new = cursor.rowcount == 1
                self._conn.execute(
                    "UPDATE items SET status = 'stored', reason = NULL, detail = NULL, tries = tries + 1,"
                    " sha256 = ?, fetched_at = ? WHERE source = ? AND url = ?",
                    (sha256, fetched_at, source, url),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return new

    def unstore(self, sha256s: list[str]) -> None:
        """Forget stored images whose file is damaged: their URLs are pending again."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sha in sha256s:
                    self._conn.execute("DELETE FROM images WHERE sha256 = ?", (sha,))
                    self._conn.execute(
                        "UPDATE items SET status = 'pending', sha256 = NULL WHERE sha256 = ?", (sha,)
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def record_failed(self, source: str, url: str, reason: str, detail: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE items SET status = 'failed', reason = ?, detail = ?, tries = tries + 1"
                " WHERE source = ? AND url = ?",
                (reason, detail[:500], source, url),
            )

    # ------------------------------------------------------------------ images / manifest

    def images(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT sha256, md5, path, bytes, width, height, format FROM images ORDER BY sha256"
            ).fetchall()
        for sha256, md5, path, size, width, height, fmt in rows:
            yield {
                "sha256": sha256,
                "md5": md5,
                "path": path,
                "bytes": size,
                "width": width,
                "height": height,
                "format": fmt,
            }

    def set_md5(self, sha256: str, md5: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE images SET md5 = ? WHERE sha256 = ?", (md5, sha256))

    def provenance(self, source_order: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every stored item grouped by sha256: sources in config order (sources no longer
        configured last, by key), then each source's listing order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sha256, source, seq, site, url, page_url, fetched_at, meta FROM items WHERE status = 'stored'"
            ).fetchall()
        rank = {key: index for index, key in enumerate(source_order)}
        rows.sort(key=lambda r: (r[0], rank.get(r[1], len(rank)), r[1], r[2], r[4]))
        grouped: dict[str, list[dict[str, Any]]] = {}
        for sha256, _source, _seq, site, url, page_url, fetched_at, meta in rows:
            entry = {
                "site": site,
                "url": url,
                "page_url": page_url,
                "fetched_at": fetched_at,
                "meta": _meta(meta),
            }
            grouped.setdefault(sha256, []).append(entry)
        return grouped

    def count_images(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]


def _usable(table: str, value: Any) -> bool:
    """Whether a parsed JSON column holds what its writer stores (an item's meta is always an object)."""
    return value is not BROKEN and (table != "items" or isinstance(value, dict))


def _meta(text: str) -> dict[str, Any]:
    """An item's meta for the manifest; one that does not parse was named when the state was opened."""
    value = parse_json(text)
    return value if _usable("items", value) else {}
