"""Two CPU processes under torchrun (gloo): DDP training, rank-0-only files, and a 2-process resume."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from train_cli import REPO, write_config

from pipeline.atomic import read_jsonl


def _torchrun(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    # "--" ends torchrun's own options: without it torchrun rejects `--run` as an ambiguous
    # abbreviation of its `--run-path` (so the Makefile's GPUS>1 line needs it too).
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "train",
        "--",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_process_gloo_run_and_resume(tmp_path, random_shard):
    cfg = write_config(tmp_path / "c.toml", collapse_every=4, collapse_samples=16)
    args = [
        "--config",
        str(cfg),
        "--data",
        str(random_shard),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--run",
        "ddp",
        "--device",
        "cpu",
    ]
    first = _torchrun([*args, "--max-steps", "4"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "x2:" in first.stderr  # one start line, from rank 0 only
    assert first.stderr.count("== train") == 1  # one summary, from rank 0 only
    ckpt = torch.load(tmp_path / "runs" / "ddp" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["world"] == 2 and ckpt["step"] == 4
    assert len(ckpt["train_gen"]) == 2  # each rank's RNG stream is saved
    assert not torch.equal(ckpt["train_gen"][0], ckpt["train_gen"][1])
    rows = read_jsonl(tmp_path / "runs" / "ddp" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4]  # rank 0 alone writes the log
    assert "distinct_share" in rows[-1]

    second = _torchrun([*args, "--max-steps", "6"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming at step 4" in second.stderr
    assert (
        torch.load(tmp_path / "runs" / "ddp" / "last.pt", map_location="cpu", weights_only=True)["step"] == 6
    )
