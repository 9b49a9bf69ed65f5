"""How every stage's `main` runs: logging from -q/-v, errors to one line and their exit code.

Each stage's entry point parses its arguments, calls `configure_logging(args)` and
hands its work to `run_stage`. Whatever goes wrong then ends the same way in every
stage: a `PipelineError` prints as `stage: message` with its class's code, an
`OSError` names the file it failed on (exit 1) instead of a traceback, an SQLite error
names the state file (exit 1), and Ctrl-C exits 130 after the stage's own cleanup has run.
A stage that writes under DATA passes `data`, and its body runs holding DATA's lock
(`pipeline.lock`), so two runs on one DATA never work at once.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from pipeline import lock, statedb
from pipeline.errors import Interrupted, PipelineError


def configure_logging(args: argparse.Namespace, stage: str) -> logging.Logger:
    """One stderr handler; messages read `stage: text` like the error lines."""
    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pipeline", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler._pipeline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger(stage)


def show_progress(args: argparse.Namespace) -> bool:
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (a `kill`, a container stop) runs the same cleanup as Ctrl-C: manifests written,
    temp files left for the next run's sweep, exit 130."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_stage(
    stage: str,
    body: Callable[[], int | None],
    *,
    interrupted: str | None = None,
    data: Path | None = None,
    wait: bool = False,
) -> int:
    """Run `body` and return the process exit code; never lets a traceback out for expected failures.

    `interrupted` replaces the generic Ctrl-C line where a stage can say more precisely what is kept.
    `data`: run `body` holding that DATA directory's lock (`wait` for it rather than fail when taken).
    """
    _terminate_like_ctrl_c()
    try:
        if data is None:
            return body() or 0
        with lock.hold_data(Path(data), wait=wait):
            return body() or 0
    except PipelineError as exc:
        print(f"{stage}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        message = (
            interrupted or "interrupted; everything written so far is kept, re-run the same command to finish"
        )
        print(f"{stage}: {message}", file=sys.stderr)
        return Interrupted.exit_code
    except sqlite3.Error as exc:
        print(f"{stage}: {statedb.explain(exc)}", file=sys.stderr)
        return PipelineError.exit_code
    except OSError as exc:
        where = exc.filename or "DATA"
        fix = (
            " (the disk is full: free some space and re-run; everything finished is kept)"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else ""
        )
        print(f"{stage}: cannot read or write {where}: {exc.strerror or exc}{fix}", file=sys.stderr)
        return PipelineError.exit_code
