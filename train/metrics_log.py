"""Where numbers go: runs/NAME/metrics.jsonl (durable appends) and TensorBoard when it is installed.

After a resume, rows past the checkpoint's step (logged by the interrupted run after its last
save) are dropped first, so the log never holds two rows for one step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

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
