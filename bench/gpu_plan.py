"""What one `make bench-gpu` call measures, in what order, and how long each part may take.

A lent GPU is held for minutes and one command may run for at most ten, so the plan puts the
headline first (eager batch 512 in bf16 for the 20,000 img/s goal, and the batch-64 comparison with
the example loop), then the cuda tests and the quality row, then the compiled rows while time allows.
Each stage has an estimate (it is not started with less time left than that) and a share (past it, its
process group is killed and the stage recorded as cut), so the whole call ends inside its limit by its
own clock, counted from process start.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any


@dataclasses.dataclass(frozen=True)
class Sizes:
    batches: tuple[int, ...]
    warmup: int  # steps before timing (compiling happens here)
    steps: int  # timed steps per variant
    profile_steps: int
    compile: bool
    quality_minutes: float  # each loop's training time in the quality row
    quality_samples: int  # generated images KID and FID are measured over
    faces: int  # synthetic faces when the shared test faces are not there
    row_s: tuple[float, float]  # (estimate, share) of an eager row
    compiled_s: tuple[float, float]  # of a compiled row
    tests_s: tuple[float, float]
    quality_s: tuple[float, float]


FULL = Sizes(
    batches=(64, 512),
    warmup=15,
    steps=100,
    profile_steps=10,
    compile=True,
    quality_minutes=0.5,
    quality_samples=2000,
    faces=2000,
    row_s=(25.0, 60.0),
    compiled_s=(60.0, 100.0),
    tests_s=(90.0, 150.0),
    quality_s=(90.0, 130.0),
)
TINY = Sizes(
    batches=(8,),
    warmup=1,
    steps=2,
    profile_steps=1,
    compile=False,
    quality_minutes=0.05,
    quality_samples=16,
    faces=64,
    row_s=(2.0, 120.0),
    compiled_s=(2.0, 120.0),
    tests_s=(2.0, 240.0),
    quality_s=(2.0, 180.0),
)


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # "row" (one throughput variant), "tests" or "quality"
    estimate_s: float
    share_s: float
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)


def row_stage(sizes: Sizes, loop: str, batch: int, precision: str, compile_mode: str = "off") -> Stage:
    spec = {"loop": loop, "batch": batch, "precision": precision, "compile": compile_mode}
    estimate, share = sizes.compiled_s if compile_mode != "off" else sizes.row_s
    return Stage(f"{loop} b{batch} {precision} compile={compile_mode}", "row", estimate, share, spec)


def plan(sizes: Sizes, cuda: bool, with_tests: bool) -> list[Stage]:
    """Headline rows, the tests, quality, the other eager rows, then every compiled variant."""
    big, small = max(sizes.batches), min(sizes.batches)
    stages = [
        row_stage(sizes, "ours", big, "bf16"),
        row_stage(sizes, "example", small, "fp32"),
        row_stage(sizes, "ours", small, "bf16"),
    ]
    if with_tests:
        stages.append(Stage("cuda tests", "tests", *sizes.tests_s))
    stages.append(Stage("quality", "quality", *sizes.quality_s))
    stages.append(row_stage(sizes, "ours", small, "fp32"))
    if big != small:
        stages += [row_stage(sizes, "example", big, "fp32"), row_stage(sizes, "ours", big, "fp32")]
    if sizes.compile:
        modes = ("default", "reduce-overhead") if cuda else ("default",)
        stages += [row_stage(sizes, "ours", b, "bf16", m) for b in (big, small) for m in modes]
    unique = {stage.name: stage for stage in stages}  # one batch size (the rehearsal) names some rows twice
    return list(unique.values())


def process_start() -> float:
    """The perf_counter() reading at which this process started, so a limit counts the interpreter's
    start and torch's import too. Linux gives it in /proc; elsewhere it is the first call."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        age = max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.perf_counter() - age


@dataclasses.dataclass
class Clock:
    """Seconds left of the call's limit, with `margin` kept back to write the report and exit."""

    start: float
    limit_s: float
    margin_s: float

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.limit_s - self.margin_s - self.elapsed()
