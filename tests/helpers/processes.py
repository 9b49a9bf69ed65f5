"""Watching the processes a test started: waiting for a state, and finding a process's descendants."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    *,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
    every: float = 0.05,
) -> None:
    """Poll `predicate` until it holds. Fails when `timeout` seconds pass (killing `process`) or when
    `process` ends first; either failure quotes the end of its stderr (a pipe) or of `log`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"it ended (exit {process.returncode}) before {what}: {_tail(process, log)}")
        if time.monotonic() > deadline:
            if process is not None:
                process.kill()
                process.wait()
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: {_tail(process, log)}")
        time.sleep(every)


def _tail(process: subprocess.Popen | None, log: Path | None) -> str:
    if log is not None:
        return log.read_text(errors="replace")[-2000:]
    if process is not None and process.stderr is not None and not process.stderr.closed:
        return str(process.stderr.read())[-2000:]
    return ""


def descendants(root: int) -> set[int]:
    """Live (non-zombie) processes below `root`."""
    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {child.pid for child in children if alive(child.pid)}


def parent_of(pid: int) -> int:
    """The parent's pid; -1 once the process is gone."""
    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return -1


def alive(pid: int) -> bool:
    """Running and not yet a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
