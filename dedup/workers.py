"""The dedup stage's process pool: its worker modules, preloaded once by the forkserver (`pipeline.pool`)."""

from __future__ import annotations

from concurrent.futures import Executor

from pipeline.pool import Inline, process_pool

PRELOAD = ["dedup.fingerprint", "dedup.faces"]


def pool(workers: int) -> Executor:
    return Inline() if workers <= 1 else process_pool(workers, PRELOAD)
