"""Watching the processes a test started: waiting for a state, and finding a process's descendants in /proc."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.lock import pid_alive, process_state


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
    """Live (non-zombie) processes below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := process_state(entry)) is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append(int(entry))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def parent_of(pid: int) -> int:
    """The parent's pid; -1 once the process is gone."""
    stat = process_state(pid)
    return -1 if stat is None else stat[1]


def alive(pid: int) -> bool:
    """Running and not yet a zombie: the product's own rule, which the stale-temp sweep uses."""
    return pid_alive(pid)
