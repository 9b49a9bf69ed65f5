"""`python -m train` as a user runs it, with a tiny-width config, for the trainer's tests.

The model is the DCGAN shape at widths 8 (TINY) so that a step takes milliseconds; the code path
is the one a full-size run takes. `train_args` is the one training command line, `run_train` runs it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers.cli import DEFAULT_TIMEOUT, run_cli

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
TORCHRUN = "torch.distributed.run"


def write_train_config(path: Path, **overrides: object) -> Path:
    """A [train] section with the tiny model, plus overrides (TOML literals via json: numbers, bools, strings)."""
    values = {**TINY, **overrides}
    lines = ["[train]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_args(
    config: Path,
    data: Path,
    runs: Path,
    *extra: str,
    run: str | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> list[str]:
    """`--config C --data D --runs-dir R [--run NAME] --device X [--no-progress] EXTRA`."""
    args = ["--config", str(config), "--data", str(data), "--runs-dir", str(runs)]
    args += ["--run", run] if run is not None else []
    args += ["--device", device, *([] if progress else ["--no-progress"])]
    return [*args, *map(str, extra)]


def run_train(
    args: list[str], cwd: Path, timeout: float = DEFAULT_TIMEOUT, check: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """`python -m train ARGS` in `cwd` through run_cli."""
    return run_cli("train", *args, cwd=cwd, timeout=timeout, check=check, **kwargs)


def torchrun_args(nproc: int, args: list[str]) -> list[str]:
    """What follows `python -m torch.distributed.run` to run `python -m train ARGS` on `nproc` processes.

    "--" ends torchrun's own options: without it torchrun rejects `--run` as an ambiguous
    abbreviation of its `--run-path` (so the Makefile's GPUS>1 line needs it too)."""
    return ["--standalone", f"--nproc_per_node={nproc}", "-m", "train", "--", *args]
