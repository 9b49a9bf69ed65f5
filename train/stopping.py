"""Stopping on SIGINT/SIGTERM: the current step finishes, `last.pt` is written, then the run exits 130.

Every rank must stop after the same step, or the others would wait in a collective forever. Agreeing
is a collective with a host sync, so under DDP ranks agree only at metrics rows (every `log_every`
steps); a single process needs no agreement and stops after the very next step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from collections.abc import Iterator
from typing import Any

import torch

from train import distributed

log = logging.getLogger("train")


@dataclasses.dataclass
class StopRequest:
    received: bool = False  # a signal arrived on this rank


@contextlib.contextmanager
def signals_caught(announce: bool) -> Iterator[StopRequest]:
    """The first SIGINT/SIGTERM asks for a stop after this step; a second Ctrl-C stops at once without
    saving, for a save that hangs (a stuck disk)."""
    stop = StopRequest()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.received:
            raise KeyboardInterrupt
        stop.received = True
        if announce:
            log.info("%s received: saving a checkpoint at the end of this step…", signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def stop_agreed(ctx: distributed.Dist, stop: StopRequest, at_row: bool, device: torch.device) -> bool:
    """Whether every rank stops after this step."""
    if not ctx.enabled:
        return stop.received
    if not at_row:
        return False
    return distributed.any_flag(ctx, stop.received, device)
