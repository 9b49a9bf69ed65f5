"""One run at a time per DATA directory: an `fcntl` lock on `DATA/.lock`, whose holder the kernel names.

Two stages working in one DATA redo each other's work, and one's stale-temp sweep can delete
the other's live temp files. The lock is a POSIX record lock (`fcntl`) on a file that is never
deleted nor written, so the kernel releases it whatever way the holder ends (kill -9 included),
there is no stale lock to clean up, and a re-run with nothing new changes no file in DATA. A
second run asks the kernel who holds it (F_GETLK gives the pid) and names that process.
`animefaces dataset` holds the lock across its stages and lets the stage processes it starts
(its direct children, nobody else) work under it. POSIX record locks belong to a process and
end when it closes any descriptor of the file, so a process opens a lock file only here, once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import Locked
from pipeline.layout import Layout

logger = logging.getLogger(__name__)

HOLDER_ENV = "ANIMEFACE_DATA_LOCK_HOLDER"  # "<pid>:<lock path>" of a parent holding the lock for its stages
_FLOCK = (
    "@hhqqi"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (Linux and the BSDs agree on the order)
)


def holder(fd: int) -> str:
    """Who holds the lock on `fd`'s file: "pid N (command)" as the kernel and /proc tell it."""
    probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0) + bytes(16)
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
        pid = struct.unpack_from(_FLOCK, answer)[4]
    except OSError:
        pid = 0
    if pid <= 0:
        return "another process"
    try:
        command = " ".join(
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        )
    except OSError:
        command = ""
    return f"pid {pid}" + (f" ({command[:200]})" if command else "")


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
        fd, kind = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666), fcntl.LOCK_EX
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or not path.is_file():
            raise
        # Read-only DATA: nobody can write there, so a shared lock on a read-only descriptor is
        # enough; the stage then says which of its own writes failed (one with none to do succeeds).
        fd, kind = os.open(path, os.O_RDONLY | os.O_CLOEXEC), fcntl.LOCK_SH
    try:
        try:
            fcntl.lockf(fd, kind | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            who = holder(fd)
            if not wait:
                raise Locked(
                    f"{data} is in use by {who}; wait for it to finish, or pass --wait to start when it does"
                ) from None
            logger.warning("%s is in use by %s; waiting for it to finish (--wait)", data, who)
            fcntl.lockf(fd, kind)
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


def process_state(pid: int | str) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/PID/stat; None once the process is gone or without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]  # the command name in (...) may hold spaces
    return state, int(ppid)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (one owned by another user counts as running).

    A zombie has ended: a stage's worker killed with the stage stays a zombie where nothing
    reaps orphans (a container whose PID 1 is not an init), and its temp files are stale.
    Read from /proc rather than psutil, because `make bench-gpu` runs on a lent machine's
    own python, which has no psutil and no registry to install it from.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    state = process_state(pid)
    return state is None or state[0] not in ("Z", "X")
