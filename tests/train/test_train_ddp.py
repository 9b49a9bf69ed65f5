"""Two CPU processes under torchrun (gloo): DDP training, rank-0-only files, and a 2-process resume."""

from __future__ import annotations

import subprocess

import pytest
import torch

from pipeline.atomic import read_jsonl
from pipeline.layout import RunLayout
from tests.helpers.cli import run_cli
from tests.helpers.train import TORCHRUN, torchrun_args, train_args, write_train_config


def _torchrun(args, cwd) -> subprocess.CompletedProcess:
    """`python -m train ARGS` on two CPU processes under torchrun."""
    return run_cli(TORCHRUN, *torchrun_args(2, args), cwd=cwd)


@pytest.mark.slow
def test_two_process_gloo_run_and_resume(tmp_path, random_shard):
    cfg = write_train_config(tmp_path / "c.toml", collapse_every=4, collapse_samples=16)
    args = train_args(cfg, random_shard, tmp_path / "runs", run="ddp")
    first = _torchrun([*args, "--max-steps", "4"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "x2:" in first.stderr  # one start line, from rank 0 only
    assert first.stderr.count("== train") == 1  # one summary, from rank 0 only
    run = RunLayout.of(tmp_path / "runs", "ddp")
    ckpt = torch.load(run.last, map_location="cpu", weights_only=True)
    assert ckpt["world"] == 2 and ckpt["step"] == 4
    assert len(ckpt["train_gen"]) == 2  # each rank's RNG stream is saved
    assert not torch.equal(ckpt["train_gen"][0], ckpt["train_gen"][1])
    rows = read_jsonl(run.metrics)
    assert [r["step"] for r in rows] == [2, 4]  # rank 0 alone writes the log
    assert "distinct_share" in rows[-1]

    second = _torchrun([*args, "--max-steps", "6"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming at step 4" in second.stderr
    assert torch.load(run.last, map_location="cpu", weights_only=True)["step"] == 6
