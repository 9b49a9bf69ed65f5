"""A run's numbers: per-step values summed into metrics rows, rows into runs/NAME/metrics.jsonl
(durable appends) and TensorBoard when it is installed, and wall time per kind of work.

After a resume, rows past the checkpoint's step (logged by the interrupted run after its last
save) are dropped first, so the log never holds two rows for one step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pipeline import atomic
from pipeline.layout import RunLayout


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool):
        self.path = RunLayout(run_dir).metrics
        rows = atomic.read_jsonl(self.path)
        kept = [r for r in rows if r.get("step", 0) <= resume_step]
        if len(kept) != len(rows) or (self.path.exists() and resume_step == 0 and rows):
            atomic.write_jsonl(self.path, kept if resume_step else [])
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass  # optional extra: pip install '.[tensorboard]'
            else:
                self.writer = SummaryWriter(
                    log_dir=str(RunLayout(run_dir).tensorboard), purge_step=resume_step or None
                )

    def log(self, row: dict[str, Any]) -> None:
        atomic.append_jsonl(self.path, row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, row["step"])

    def rows(self) -> list[dict[str, Any]]:
        return atomic.read_jsonl(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def warn(message: str) -> None:
    """`train: warning: ...` on stderr through logging, so -q keeps it and tests and users see one format."""
    logging.getLogger("train").warning("warning: %s", message)


class Window:
    """The steps between two metrics rows: per-step values summed on the device and read once per row.

    A `.item()` per step would stall a GPU pipeline, so the first non-finite step is also recorded on
    the device (against a device-side step counter, not a host-made tensor, which would sync too) and
    checked before anything is logged or saved.
    """

    def __init__(self, step: int, device: torch.device):
        self.device_step = torch.tensor(step, device=device)
        self.bad_step = torch.tensor(-1, device=device)
        self.restart()

    def restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.device_step += 1
        finite = torch.isfinite(values["loss_d"] + values["loss_g"])
        self.bad_step = torch.where((self.bad_step < 0) & ~finite, self.device_step, self.bad_step)
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1

    def first_bad_step(self) -> int | None:
        bad = int(self.bad_step.item())
        return bad if bad >= 0 else None

    def means(self, images_per_step: int) -> dict[str, float]:
        """Mean of each value over the window and training img/s (evaluation time excluded)."""
        n = max(1, self.steps)
        row = {key: round(float(value.item()) / n, 6) for key, value in self.sums.items()}
        row["img_per_s"] = round(
            self.steps * images_per_step / max(time.perf_counter() - self.started, 1e-9), 2
        )
        return row


class PhaseClock:
    """Wall time per kind of work, so the end-of-run summary can say where a run's time went.

    Training is what is left after the timed phases, because on a GPU the steps run asynchronously
    and only the phases that read results back (FID, grids, checkpoints) end in a sync anyway.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def breakdown(self) -> dict[str, float]:
        return {"training": max(0.0, self.elapsed() - sum(self.seconds.values())), **self.seconds}
