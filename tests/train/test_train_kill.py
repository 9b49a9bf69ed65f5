"""`kill -9` at random points, one of them inside a checkpoint write: last.pt always loads, and the
resumed run reaches the target with the same weights as a run that was never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import torch

from pipeline.atomic import TEMP_PREFIX
from pipeline.layout import RunLayout
from tests.helpers.cli import start_cli
from tests.helpers.processes import wait_until
from tests.helpers.train import run_train, train_args, write_train_config
from train import checkpoint

TARGET = 150  # more steps than the kills leave room for, so every kill lands mid-run
KILLS = 3
MID_WRITE_TRIES = 6


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    """Poll every half millisecond (a checkpoint write is short) for up to 120 s."""
    wait_until(predicate, 120, what, process=proc, every=0.0005)


def _saving(run_dir: Path) -> bool:
    try:
        return any(
            name.startswith(f"{TEMP_PREFIX}{RunLayout(run_dir).last.name}.") for name in os.listdir(run_dir)
        )
    except FileNotFoundError:
        return False


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _training(run_dir: Path, proc: subprocess.Popen) -> None:
    """Wait until this process has saved a checkpoint of its own, i.e. it is past start-up and training."""
    last = RunLayout(run_dir).last
    before = _mtime(last)
    _wait_for(lambda: _mtime(last) != before, proc, "a new checkpoint")


def _step_of_last_pt(run_dir: Path) -> int:
    return int(checkpoint.load(RunLayout(run_dir).last)["step"])  # raises if the file is damaged


def test_kill_9_at_random_points_and_mid_checkpoint(tmp_path, random_shard):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    cfg = write_train_config(
        tmp_path / "c.toml", checkpoint_every=1, log_every=5, sample_every=0, deterministic=True
    )
    runs = tmp_path / "runs"
    run_dir = RunLayout.of(runs, "killed").dir
    args = train_args(cfg, random_shard, runs, "--max-steps", str(TARGET), progress=False)
    steps_seen = []

    # kill -9 at random moments once the run is training (a checkpoint exists), each followed by a resume
    for _ in range(KILLS):
        proc = start_cli(
            "train", *args, "--run", "killed", cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _training(run_dir, proc)
        time.sleep(rng.uniform(0.0, 0.8))
        _kill(proc)
        steps_seen.append(_step_of_last_pt(run_dir))

    # kill -9 while last.pt is being written: the temp file is left behind, the old last.pt still loads
    landed_mid_write = False
    for _ in range(MID_WRITE_TRIES):
        proc = start_cli(
            "train", *args, "--run", "killed", cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _training(run_dir, proc)
        _wait_for(lambda: _saving(run_dir), proc, "checkpoint write")
        _kill(proc)
        steps_seen.append(_step_of_last_pt(run_dir))
        if _saving(run_dir):  # the rename had not happened yet: this kill was inside the write
            landed_mid_write = True
            break
    assert landed_mid_write, (
        f"no kill landed inside a checkpoint write in {MID_WRITE_TRIES} tries (seed {seed})"
    )
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] < TARGET, (steps_seen, seed)

    resumed = run_train([*args, "--run", "killed"], tmp_path, timeout=600, check=True)
    assert f"resuming at step {steps_seen[-1]}" in resumed.stderr
    assert not _saving(run_dir)  # the stale temp file was swept
    assert _step_of_last_pt(run_dir) == TARGET

    run_train([*args, "--run", "straight"], tmp_path, timeout=600, check=True)
    killed = torch.load(RunLayout(run_dir).last, map_location="cpu", weights_only=True)
    straight = torch.load(RunLayout.of(runs, "straight").last, map_location="cpu", weights_only=True)
    assert killed["step"] == straight["step"] == TARGET
    for part in ("G", "D", "G_ema"):
        different = [k for k, v in straight[part].items() if not torch.equal(v, killed[part][k])]
        assert different == [], (part, different, seed)
