"""`train score`: a trained discriminator's verdict on every shard face, for the review app's D view."""

from __future__ import annotations

import math

import numpy as np

from pipeline.layout import RunLayout
from pipeline.scores import read_scores
from tests.helpers.cli import one_line, run_cli
from tests.helpers.train import run_train, train_args, write_train_config
from train.shard import open_shard, write_shard


def test_score_writes_one_row_per_shard_face(tmp_path):
    rng = np.random.default_rng(3)
    write_shard(tmp_path / "data", rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8))
    config = write_train_config(tmp_path / "c.toml")
    run_train(
        train_args(config, tmp_path / "data", tmp_path / "runs", "--max-steps", "4", run="s"),
        tmp_path,
        check=True,
    )
    run = RunLayout.of(tmp_path / "runs", "s")

    result = run_cli(
        "animefaces score", "--ckpt", run.last, "--data", tmp_path / "data", "--device", "cpu", check=True
    )

    rows = read_scores(run.scores)
    assert [r.id for r in rows] == list(open_shard(tmp_path / "data").meta["ids"])
    assert all(math.isfinite(r.score) and r.network == "D" and r.step == 4 for r in rows)
    assert len({r.score for r in rows}) > 1  # random faces do not all look alike to D
    assert "faces scored" in result.stdout and "40" in result.stdout
    # the same checkpoint scores the same faces the same way (eval-mode BatchNorm: no batch-mates)
    before = run.scores.read_bytes()
    run_train(["score", "--ckpt", str(run.last), "--data", str(tmp_path / "data")], tmp_path, check=True)
    assert run.scores.read_bytes() == before


def test_score_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    bogus = tmp_path / "runs" / "x" / "best.pt"
    bogus.parent.mkdir(parents=True)
    bogus.write_bytes(b"not a checkpoint")
    write_shard(tmp_path / "data", np.zeros((4, 64, 64, 3), np.uint8))
    result = run_train(
        ["score", "--ckpt", str(bogus), "--data", str(tmp_path / "data"), "--device", "cpu"], tmp_path
    )
    assert result.returncode != 0
    assert str(bogus) in one_line(result, "train score")
