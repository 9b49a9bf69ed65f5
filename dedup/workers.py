"""Process pools for the CPU-bound steps, safe next to OpenCV.

Forking a process after OpenCV has started its thread pool can leave the child waiting on a
lock nobody will release (facecrop hit exactly this). Workers therefore come from a
forkserver, which never runs OpenCV itself; it pre-imports the worker modules once so each
worker starts in milliseconds instead of re-importing OpenCV, SciPy and imagehash.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor

from pipeline import lifeline

PRELOAD = ["dedup.fingerprint", "dedup.faces"]


class Inline(Executor):
    """The executor interface without processes, for jobs too small to repay starting workers."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        return map(fn, *iterables)


def pool(workers: int) -> Executor:
    if workers <= 1:
        return Inline()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    # Workers end with this process, even when it is killed with -9 (`pipeline.lifeline`).
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=lifeline.init_worker, initargs=(os.getpid(),)
    )
