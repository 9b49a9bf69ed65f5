"""Resume is exact, interruption saves and exits 0, divergence stops with the step named."""

from __future__ import annotations

import signal
import subprocess
import time

import torch

from pipeline.atomic import read_jsonl
from pipeline.layout import RunLayout
from tests.helpers.cli import start_cli
from tests.helpers.train import run_train, train_args, write_train_config

DETERMINISTIC = {"deterministic": True, "diffaugment": "color,translation,cutout"}


def _weights(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt, {f"{part}.{k}": v for part in ("G", "D", "G_ema") for k, v in ckpt[part].items()}


def test_k_plus_resume_plus_k_is_bit_identical_to_2k_straight(tmp_path, random_shard):
    """2k steps straight vs k, a fresh process resuming, then k more: identical weights, EMA and optimizer state.

    k = 7 crosses an epoch boundary (48 faces / batch 8 = 6 steps per epoch) and is not a
    checkpoint_every multiple, so the resume point is the final save of the first run.
    """
    cfg = write_train_config(tmp_path / "c.toml", **DETERMINISTIC)
    k = 7
    run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", str(2 * k), run="straight"),
        tmp_path,
        check=True,
    )
    run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", str(k), run="split"),
        tmp_path,
        check=True,
    )
    proc = run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", str(2 * k), run="split"),
        tmp_path,
        check=True,
    )
    assert f"resuming at step {k}" in proc.stderr

    a, wa = _weights(RunLayout.of(tmp_path / "runs", "straight").last)
    b, wb = _weights(RunLayout.of(tmp_path / "runs", "split").last)
    assert a["step"] == b["step"] == 2 * k
    assert wa.keys() == wb.keys()
    different = [name for name in wa if not torch.equal(wa[name], wb[name])]
    assert different == []
    for opt in ("opt_g", "opt_d"):
        for pid, state in a[opt]["state"].items():
            assert torch.equal(state["exp_avg"], b[opt]["state"][pid]["exp_avg"])
    # and the metrics log holds each step once
    steps = [r["step"] for r in read_jsonl(RunLayout.of(tmp_path / "runs", "split").metrics)]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * k


def test_sigint_saves_a_checkpoint_exits_130_and_the_rerun_continues(tmp_path, random_shard):
    cfg = write_train_config(tmp_path / "c.toml", checkpoint_every=1000)
    run = RunLayout.of(tmp_path / "runs", "sig")
    proc = start_cli(
        "train",
        *train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "100000", run="sig"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not read_jsonl(run.metrics):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no training progress within 180 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # Interrupted: re-run the same command to finish
    assert "SIGINT received" in err and "re-run the same command" in err
    ckpt = torch.load(run.last, map_location="cpu", weights_only=True)
    stopped = ckpt["step"]
    assert 2 <= stopped < 100000  # saved at the interruption, not at a checkpoint_every multiple
    assert read_jsonl(run.metrics)[-1]["step"] == stopped

    again = run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", str(stopped + 3), run="sig"),
        tmp_path,
        check=True,
    )
    assert f"resuming at step {stopped}" in again.stderr
    assert torch.load(run.last, map_location="cpu", weights_only=True)["step"] == stopped + 3


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, random_shard):
    good = write_train_config(tmp_path / "good.toml")
    run_train(
        train_args(good, random_shard, tmp_path / "runs", "--max-steps", "4", run="nan"), tmp_path, check=True
    )
    last = RunLayout.of(tmp_path / "runs", "nan").last
    before = last.read_bytes()
    # an absurd learning rate makes D's weights overflow on the first update after the resume
    bad = write_train_config(tmp_path / "bad.toml", loss="hinge", lr_g=1e30, lr_d=1e30)
    proc = run_train(
        train_args(bad, random_shard, tmp_path / "runs", "--max-steps", "50", run="nan"), tmp_path
    )
    assert proc.returncode == 5, proc.stderr  # Diverged
    assert "train: non-finite loss at step 5" in proc.stderr
    assert "step 4" in proc.stderr and "Traceback" not in proc.stderr
    assert last.read_bytes() == before


def test_changed_model_shape_refuses_to_resume(tmp_path, random_shard):
    cfg = write_train_config(tmp_path / "c.toml")
    run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "2", run="r"), tmp_path, check=True
    )
    wider = write_train_config(tmp_path / "w.toml", ngf=16)
    proc = run_train(
        train_args(wider, random_shard, tmp_path / "runs", "--max-steps", "4", run="r"), tmp_path
    )
    assert proc.returncode == 2
    assert "ngf" in proc.stderr and "pick another --run" in proc.stderr
