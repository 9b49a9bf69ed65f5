"""Writing files so that a kill at any instant leaves either the old file or the new one.

Every stage writes through these helpers: temp file in the same directory (so the
rename cannot cross filesystems), fsync, then `os.replace`, which is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pipeline.lock import pid_alive

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None, *, only_if_changed: bool = False
) -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on clean exit fsync it and rename it into place.

    On an exception the temp file is removed and `path` is untouched. A kill -9 can
    leave a `.tmp-*` file behind; `remove_stale_temps` sweeps those on the next run.
    With `only_if_changed`, a result byte-identical to the existing file is discarded,
    so a re-run with nothing new leaves every file (and its mtime) as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open writes whole files: mode must be 'w' or 'wb'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.{os.getpid()}.", dir=path.parent)
    # mkstemp creates 0600 files; outputs are ordinary files a person opens, so use the umask.
    os.fchmod(fd, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if only_if_changed and path.is_file() and filecmp.cmp(tmp_name, path, shallow=False):
            os.unlink(tmp_name)
            return
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.filename in (None, tmp_name) and exc.errno is not None:
            # A write that failed (a full disk) names no file, or the temp file: name the file being written.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes, *, only_if_changed: bool = False) -> None:
    with atomic_open(path, "wb", only_if_changed=only_if_changed) as fh:
        fh.write(data)


def write_text(path: str | Path, text: str) -> None:
    """Text outputs (manifests, pages, reports) are left untouched when their content is the same."""
    with atomic_open(path, "w", encoding="utf-8", only_if_changed=True) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Replace a JSONL file as a whole (untouched when identical); returns the number of rows."""
    count = 0
    with atomic_open(path, "w", encoding="utf-8", only_if_changed=True) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row durably. A kill mid-write can tear only the last line, which
    `read_jsonl` ignores, so an append-only log never loses an earlier row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"
    with path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                # The previous writer was killed mid-line: finish that torn line so
                # the new row starts on a line of its own.
                fh.write(b"\n")
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every complete row of a JSONL file (none when it does not exist).

    A line that does not parse is the torn write of a killed append (the writer had not
    returned, so its stage never counted that row as done and will redo it) or a hand edit
    gone wrong; either way it is skipped with a warning naming file and line rather than
    crashing the run. JSON nested too deep for Python's parser is such a line too.
    """
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                logger.warning(
                    "%s:%d: skipping a line that is not JSON (a torn write or a bad edit)", path, number
                )
                continue
            yield number, value


def read_jsonl(path: str | Path) -> list[Any]:
    """All complete rows of a JSONL file ([] when it does not exist); see `iter_jsonl`."""
    return [value for _, value in iter_jsonl(path)]


def temp_owner(name: str) -> int | None:
    """The pid a temp file's name carries (`.tmp-<name>.<pid>.<random>`); None for other names."""
    parts = name.rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def remove_stale_temps(directory: str | Path) -> int:
    """Delete temp files a killed run left behind under `directory`; returns how many.

    A temp file whose writer is still alive is someone's write in progress, never stale: only
    the files of dead writers (and of names without a pid) are removed.
    """
    directory = Path(directory)
    if not directory.exists():
        return 0
    removed = 0
    for tmp in directory.rglob(TEMP_PREFIX + "*"):
        owner = temp_owner(tmp.name)
        if owner is not None and (owner == os.getpid() or pid_alive(owner)):
            continue
        if tmp.is_file():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
    return removed


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; without this a power cut can undo it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
