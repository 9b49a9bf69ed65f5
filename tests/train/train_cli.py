"""Running `python -m train` as a user would, with a tiny-width config, for the trainer's tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "nz": 16,
    "ngf": 8,
    "ndf": 8,
    "batch_size": 8,
    "log_every": 2,
    "sample_every": 4,
    "checkpoint_every": 4,
    "fid_every": 0,
    "collapse_every": 0,
    "tensorboard": False,
}


def run_train(
    args: list[str], cwd: Path, timeout: float = 240, check: bool = False
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def write_config(path: Path, **overrides: object) -> Path:
    """A [train] section with the tiny model, plus overrides (TOML literals via json: numbers, bools, strings)."""
    values = {**TINY, **overrides}
    lines = ["[train]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
