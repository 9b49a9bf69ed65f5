"""What one training step costs beyond its speed: how long the device waits on the host, how often the
host waits on the device, and how many times torch.compile compiled again.

Busy time is the union of the device's own event intervals. Summing every profiler row instead counts
a kernel twice (once in its own row, once inside the op that launched it), which reads as a busier
device and a host-wait share biased towards zero.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals in seconds: overlapping or nested events count once."""
    total = 0.0
    current_start = current_end = None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def device_intervals(prof: Any, device_type: torch.autograd.DeviceType) -> list[tuple[float, float]]:
    """(start, end) in seconds of every profiled event that ran on `device_type` (kernels, memcpys)."""
    out = []
    for event in prof.events():
        if event.device_type != device_type:
            continue
        interval = event.time_range
        out.append((interval.start / 1e6, interval.end / 1e6))
    return out


def host_wait_share(
    step: Callable[[], Any], device: torch.device, steps: int, sync: Callable[[], None]
) -> float | None:
    """Share of the timed wall clock in which the GPU ran nothing: it waited on the host. Profiling
    adds host work, so this is an upper bound. None on a CPU, where there is no separate device."""
    if device.type != "cuda":
        return None
    return idle_share(step, steps, sync, torch.autograd.DeviceType.CUDA)


def idle_share(
    step: Callable[[], Any], steps: int, sync: Callable[[], None], device_type: torch.autograd.DeviceType
) -> float:
    """1 - (union of `device_type` event time) / wall clock, over `steps` profiled calls of `step`."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device_type == torch.autograd.DeviceType.CUDA:
        activities.append(ProfilerActivity.CUDA)
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        wall = time.perf_counter() - t0
    busy = busy_seconds(device_intervals(prof, device_type))
    return round(min(1.0, max(0.0, 1.0 - busy / wall)), 3)


def syncs_per_step(step: Callable[[], Any], device: torch.device, steps: int) -> float | None:
    """Host syncs CUDA reports per step (set_sync_debug_mode("warn") warns once per sync)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return round(sum("synchroniz" in str(w.message) for w in caught) / max(1, steps), 2)


class RecompileCounter(logging.Handler):
    """Counts dynamo's "Recompiling function" records: a compiled row that recompiles every few steps
    measures the compiler, not the step, and the count says so beside its number."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Recompiling function" in message:
            self.count += 1
            self.reasons.append(message[:300])

    def __enter__(self) -> RecompileCounter:
        torch._logging.set_logs(recompiles=True)
        for name in _recompile_loggers():
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in _recompile_loggers():
            logging.getLogger(name).removeHandler(self)
        torch._logging.set_logs()


def _recompile_loggers() -> list[str]:
    """The artifact logger dynamo writes recompiles to (its name moved between torch releases)."""
    return [name for name in logging.root.manager.loggerDict if name.endswith("__recompiles")] or [
        "torch._dynamo"
    ]
