"""Opening a stage's SQLite state file, and what to say when SQLite fails on one.

Every stage keeps its progress in one SQLite file under DATA. A file can be damaged (a disk
error, a bad copy, a person's edit) and SQLite's own errors name no file ("file is not a
database"), so every state file is opened here: it is checked once on open, and the runner
words any later SQLite error with the file it came from.

A damaged file is handled by what it holds. A cache (work that can be redone from the files
beside it: dedup's fingerprints, facecrop's detections) is moved aside and rebuilt, with a
warning. A record that cannot be redone (the crawler's memory of what failed and why) stops
the run with one line saying how to recover.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged"
_opened: list[Path] = []  # state files this process opened, latest last (for `explain`)


class StateDamaged(PipelineError):
    """A state file SQLite cannot read; the message names it and the fix."""


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error means the file's content is unreadable (not a lock, a full disk or permissions)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text or "damaged" in text
    )


def _unreadable(exc: UnicodeDecodeError) -> sqlite3.DatabaseError:
    """SQLite's own error text quotes what it found (a table or index name from the schema); when those
    bytes are not UTF-8 the sqlite3 module cannot even build its exception and raises a bare
    UnicodeDecodeError instead. That can only be damage, so it is worded as damage, bytes escaped."""
    found = bytes(exc.object[:160]).decode("utf-8", errors="backslashreplace")
    return sqlite3.DatabaseError(f"damaged: {found}")


def _check(db: sqlite3.Connection) -> None:
    """Read every page once (`quick_check`): a truncated or garbled file fails here, not halfway through a run.

    Its answer is read as bytes: a damaged file's report may quote text that is not UTF-8, and the
    check must end with its finding, whatever the bytes."""
    factory = db.text_factory
    db.text_factory = bytes
    try:
        row = db.execute("PRAGMA quick_check(1)").fetchone()
    except UnicodeDecodeError as exc:
        raise _unreadable(exc) from None
    finally:
        db.text_factory = factory
    result = None if row is None else bytes(row[0]).decode("utf-8", errors="backslashreplace")
    if result != "ok":
        found = " ".join(part for part in (result or "no answer").split() if part != "***")
        raise sqlite3.DatabaseError(f"damaged: {found[:160]}")


def _strict_text(value: bytes) -> str:
    """Text as SQLite stored it; bytes that are not UTF-8 can only be damage (every writer here stores str)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise sqlite3.DatabaseError(f"damaged: a stored text is not UTF-8 ({value[:40]!r})") from None


def _lenient_text(value: bytes) -> str:
    """For a cache: damaged text reads as text that fails its reader's validation (and is redone)."""
    return value.decode("utf-8", errors="replace")


def move_aside(path: Path) -> Path:
    """Rename a state file (and its WAL/SHM companions) to `<name>.damaged`, replacing an older one."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
    path.replace(target)
    return target


def connect(path: Path, *, cache: bool, redo: str = "", **kwargs: Any) -> sqlite3.Connection:
    """Open (creating) the state file at `path`, checked; see the module docstring for a damaged one.

    `cache`: the file only saves work, so a damaged one is moved aside and started afresh;
    `redo` says in the warning what the rebuild costs ("every image is detected again"). Text
    that is not UTF-8 (damage inside a row, which `quick_check` cannot see) is a damaged file when
    not a cache; in a cache it reads with replacement characters, for the reader to reject.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _opened.append(path)
    db = sqlite3.connect(path, **kwargs)
    db.text_factory = _lenient_text if cache else _strict_text
    try:
        _check(db)
        db.execute("PRAGMA journal_mode=WAL")
        return db
    except sqlite3.DatabaseError as exc:
        db.close()
        if not damaged(exc):
            raise
        if not cache:
            raise StateDamaged(
                f"{path} is damaged ({exc}); move it aside (mv '{path}' '{path}{DAMAGED_SUFFIX}') and re-run: "
                "the stored files and the manifests are kept"
            ) from None
        aside = move_aside(path)
        logger.warning(
            "%s was damaged (%s); it only saves work, so it was moved to %s and is rebuilt now%s",
            path,
            exc,
            aside.name,
            f" ({redo})" if redo else "",
        )
        db = sqlite3.connect(path, **kwargs)
        db.text_factory = _lenient_text
        db.execute("PRAGMA journal_mode=WAL")
        return db


def explain(exc: sqlite3.Error) -> str:
    """One line for an SQLite error that ended a run: the file it most likely came from, what happened, the fix."""
    where = str(_opened[-1]) if _opened else "the stage's state file"
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return f"{where}: the disk is full ({text}); free some space and re-run: everything committed is kept"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return f"{where}: cannot write it ({text}); make DATA writable and re-run"
    if "locked" in lowered or "busy" in lowered:
        return f"{where}: in use by another process ({text}); wait for it and re-run"
    if damaged(exc):
        return (
            f"{where} is damaged ({text}); move it aside (mv '{where}' '{where}{DAMAGED_SUFFIX}') and re-run: "
            "the stored files and the manifests are kept"
        )
    return f"{where}: {text}"
