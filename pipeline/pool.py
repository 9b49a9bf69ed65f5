"""Process pools for the stages' CPU-bound work: safe next to OpenCV, and gone with the stage.

Forking a process after OpenCV has started its thread pool can leave the child waiting on a
lock nobody will release (facecrop hit exactly this). Workers therefore come from a
forkserver, which never runs OpenCV itself; it pre-imports the worker modules once, so each
worker starts in milliseconds instead of re-importing OpenCV, SciPy and imagehash. Every
worker watches the stage's main process (`pipeline.lifeline`) and ends with it, kill -9 included.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any


def worker_count(configured: int) -> int:
    """A stage's `workers` setting: 0 means one process per CPU core."""
    return configured or os.cpu_count() or 1


def process_pool(
    workers: int,
    preload: Iterable[str],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> ProcessPoolExecutor:
    """`workers` forkserver processes with `preload` imported once; each runs `initializer(*initargs)`."""
    from pipeline import lifeline

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=lifeline.init_worker,
        initargs=(os.getpid(), initializer, *initargs),
    )


class Inline(Executor):
    """The executor interface without processes, for jobs too small to repay starting workers."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        return map(fn, *iterables)
