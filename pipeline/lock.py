"""One run at a time per DATA directory: an `fcntl` lock on `DATA/.lock` that names its holder.

Two stages working in one DATA redo each other's work, and one's stale-temp sweep can delete
the other's live temp files. The lock is an `flock` on a file that is never deleted, so the
kernel releases it whatever way the holder ends (kill -9 included) and there is no stale lock
to clean up. The holder writes its pid and command line into the file, so a second run can
say who it is waiting for. `animefaces dataset` holds the lock across its stages and lets the
stage processes it starts (its direct children, nobody else) work under it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import Locked
from pipeline.layout import Layout

logger = logging.getLogger(__name__)

HOLDER_ENV = "ANIMEFACE_DATA_LOCK_HOLDER"  # "<pid>:<lock path>" of a parent holding the lock for its stages


def holder(path: Path) -> str:
    """Who the lock file says holds it ("pid N (command)"), or a note that it does not say yet."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").partition("\n")[0].strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process (it has not written its pid yet)"
    return f"pid {pid}" + (f" ({command})" if command else "")


def _held_by_parent(path: Path) -> bool:
    """True in a stage process that `animefaces dataset` started while it holds this lock."""
    return os.environ.get(HOLDER_ENV) == f"{os.getppid()}:{path.resolve()}"


@contextlib.contextmanager
def hold_data(data: Path, *, wait: bool = False, for_children: bool = False) -> Iterator[None]:
    """Hold DATA's lock for the block; `Locked` naming the holder if another run has it (unless `wait`).

    `for_children`: the stage processes this process starts may work under the lock it holds.
    """
    path = Layout(data).lock
    if _held_by_parent(path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        writable = True
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or not path.is_file():
            raise
        # Read-only DATA: the lock still works on a read-only descriptor; the stage then says
        # which of its own writes failed, and a stage with nothing to write succeeds.
        fd, writable = os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = holder(path)
            if not wait:
                raise Locked(f"{data} is in use by {who}; wait for it to finish, or pass --wait to start "
                             "when it does") from None
            logger.warning("%s is in use by %s; waiting for it to finish (--wait)", data, who)
            fcntl.flock(fd, fcntl.LOCK_EX)
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode(errors="replace"), 0)
        previous = os.environ.get(HOLDER_ENV)
        if for_children:
            os.environ[HOLDER_ENV] = f"{os.getpid()}:{path.resolve()}"
        try:
            yield
        finally:
            if for_children:
                if previous is None:
                    os.environ.pop(HOLDER_ENV, None)
                else:
                    os.environ[HOLDER_ENV] = previous
    finally:
        os.close(fd)  # releases the lock; the file stays, so no run ever races to create it


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
