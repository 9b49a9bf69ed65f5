"""A missing, truncated, wrongly shaped, damaged or empty shard is one clear error line, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import last_line
from tests.helpers.train import run_train, train_args, write_train_config
from train.shard import ShardError, open_shard, shard_paths, write_shard


def test_missing_shard_is_one_line_saying_make_dataset(tmp_path):
    cfg = write_train_config(tmp_path / "c.toml")
    proc = run_train(
        train_args(cfg, tmp_path / "data", tmp_path / "runs", "--max-steps", "2"),
        cwd=tmp_path,
    )
    assert proc.returncode == 4  # InputMissing: an earlier stage's output is not there
    assert "run `make dataset` first" in last_line(proc, "train")


def test_truncated_shard_is_one_line(tmp_path, random_shard):
    npy, _ = shard_paths(random_shard)
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) // 2])
    cfg = write_train_config(tmp_path / "c.toml")
    proc = run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "2"),
        cwd=tmp_path,
    )
    assert proc.returncode == 4
    line = last_line(proc, "train")
    assert "truncated" in line and "make dataset" in line


def test_wrong_shape_is_rejected(tmp_path):
    write_shard(tmp_path, np.zeros((10, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ShardError, match=r"expected uint8 \[N, 64, 64, 3\]"):
        open_shard(tmp_path)


def test_grayscale_shard_is_rejected(tmp_path):
    write_shard(tmp_path, np.zeros((10, 64, 64, 1), dtype=np.uint8))
    with pytest.raises(ShardError, match="expected uint8"):
        open_shard(tmp_path)


def test_empty_shard_is_rejected(tmp_path):
    write_shard(tmp_path, np.zeros((0, 64, 64, 3), dtype=np.uint8))
    with pytest.raises(ShardError, match="empty"):
        open_shard(tmp_path)


def test_damaged_bytes_fail_the_sha256_check(tmp_path, random_shard):
    npy, _ = shard_paths(random_shard)
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only the hash can tell
    npy.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="sha256"):
        open_shard(random_shard)


def test_metadata_that_disagrees_with_the_array_is_rejected(random_shard):
    _, meta_path = shard_paths(random_shard)
    meta = json.loads(meta_path.read_text())
    meta["count"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ShardError, match="count=999"):
        open_shard(random_shard)


def test_missing_sidecar_is_rejected(random_shard):
    _, meta_path = shard_paths(random_shard)
    meta_path.unlink()
    with pytest.raises(ShardError, match="missing"):
        open_shard(random_shard)


def test_shard_smaller_than_a_batch_is_one_line(tmp_path):
    write_shard(tmp_path / "data", np.zeros((4, 64, 64, 3), dtype=np.uint8))
    cfg = write_train_config(tmp_path / "c.toml")
    proc = run_train(
        train_args(cfg, tmp_path / "data", tmp_path / "runs", "--max-steps", "2"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "fewer than batch_size" in last_line(proc, "train")


def test_unknown_config_key_is_one_line(tmp_path, random_shard):
    cfg = write_train_config(tmp_path / "c.toml", lr_gg=0.1)
    proc = run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "2"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "lr_gg" in last_line(proc, "train")
