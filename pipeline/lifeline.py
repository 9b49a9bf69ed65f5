"""Worker processes that die with the stage that started them, however it ends (kill -9 included).

A pool's workers come from a forkserver, so their parent is the forkserver, not the stage, and
each holds both ends of the pool's queues and the forkserver's "alive" pipe: when only the
stage's main process is killed, no worker ever sees an end of file, the forkserver waits for
them and the resource tracker for all of them (measured: 280 MB held for over 100 s on
every kill). So every worker watches the stage's main process itself: a thread blocks on a
pidfd of that process (Linux 5.3+; polled once a second elsewhere) and ends the worker the
moment it exits. The workers gone, the forkserver and the resource tracker see their pipes
close and exit on their own. PR_SET_PDEATHSIG also ends a worker whose forkserver dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.lock import pid_alive

PR_SET_PDEATHSIG = 1


def _kill_me_with_my_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch(pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the process has exited
    else:
        while pid_alive(pid):
            time.sleep(1.0)
    os._exit(1)  # noqa: SLF001 - nothing of this worker's may outlive the stage (no cleanup to run)


def die_with(pid: int) -> None:
    """End this process as soon as process `pid` (the stage's main process) has exited."""
    _kill_me_with_my_parent()
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # it is already gone
    except (AttributeError, OSError):
        pass  # no pidfd on this system: poll
    threading.Thread(target=_watch, args=(pid, pidfd), name="lifeline", daemon=True).start()


def init_worker(stage_pid: int, initializer: Callable[..., Any] | None = None, *initargs: Any) -> None:
    """A pool initializer: `die_with(stage_pid)`, then the pool's own initializer."""
    die_with(stage_pid)
    if initializer is not None:
        initializer(*initargs)
