"""`python -m train sample --n`: bounded by `[train] sample_max`, and made in batches whatever its size.

A hundred million images once meant one 40 GB tensor and a RuntimeError traceback; now the count
is refused in one line (exit 2) above the configured bound, and below it memory stays flat.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.layout import RunLayout
from tests.helpers.cli import DEFAULT_TIMEOUT, cli_env, one_line
from tests.helpers.train import run_train, train_args, write_train_config


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A 2-step unconditional run of the tiny model on a random shard; its last.pt."""
    from train.shard import write_shard

    root = tmp_path_factory.mktemp("range")
    rng = np.random.default_rng(2)
    write_shard(root / "data", rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
    cfg = write_train_config(root / "c.toml")
    args = train_args(cfg, root / "data", root / "runs", "--max-steps", "2", run="r", progress=False)
    run_train(args, root, check=True)
    return RunLayout.of(root / "runs", "r").last


def test_a_count_beyond_the_default_bound_is_one_line(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "huge.png"
    proc = run_train(
        ["sample", "--ckpt", str(ckpt), "--n", "100000000", "--out", str(out)], tmp_path, timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line(proc, "train sample")
    assert "--n 100000000" in line and "sample_max = 10000" in line, line
    assert not out.exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_bound_is_the_config_files_train_sample_max(ckpt: Path, tmp_path: Path, where: str) -> None:
    cfg = write_train_config(tmp_path / "s.toml", sample_max=12)
    out = tmp_path / "g.png"

    def sample(n: int) -> subprocess.CompletedProcess:
        args = ["sample", "--ckpt", str(ckpt), "--n", str(n), "--out", str(out)]
        config = ["--config", str(cfg)]
        return run_train([*config, *args] if where == "before" else [*args, *config], tmp_path)

    refused = sample(13)
    assert refused.returncode == 2
    assert "--n 13 is more than [train] sample_max = 12" in one_line(refused, "train sample")
    assert not out.exists()
    written = sample(12)
    assert written.returncode == 0, written.stderr
    assert Image.open(out).size == (8 * 66 + 2, 2 * 66 + 2)


def test_sample_max_out_of_range_is_one_line_naming_it(ckpt: Path, tmp_path: Path) -> None:
    cfg = write_train_config(tmp_path / "z.toml", sample_max=0)
    proc = run_train(
        ["sample", "--ckpt", str(ckpt), "--config", str(cfg), "--out", str(tmp_path / "x.png")], tmp_path
    )
    assert proc.returncode == 2
    line = one_line(proc, "train sample")
    assert "sample_max" in line and ">= 1" in line, line


def test_a_named_config_file_that_is_missing_is_one_line(ckpt: Path, tmp_path: Path) -> None:
    proc = run_train(["sample", "--ckpt", str(ckpt), "--config", str(tmp_path / "nope.toml")], tmp_path)
    assert proc.returncode == 2
    assert "nope.toml" in one_line(proc, "train sample")


PEAK = """
import resource, runpy, sys
sys.argv = ["train", *sys.argv[1:]]
try:
    runpy.run_module("train", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)
"""


def peak_kib(args: list[str], cwd: Path) -> int:
    """The real `python -m train` in a process of its own; returns its peak resident memory (KiB)."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
    )
    peak, code = proc.stdout.split()[-2:]
    assert code == "0", proc.stderr[-3000:]
    return int(peak)


def test_memory_does_not_grow_with_n(ckpt: Path, tmp_path: Path) -> None:
    """3,000 images held at once (as floats, then a grid) cost several hundred MB more than 64 do;
    made and written a batch at a time they cost about the same."""
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    base = peak_kib(["sample", "--ckpt", str(ckpt), "--n", "64", "--out", str(small)], tmp_path)
    grown = peak_kib(["sample", "--ckpt", str(ckpt), "--n", "3000", "--out", str(large)], tmp_path)
    assert grown - base < 120 * 1024, f"peak grew by {(grown - base) // 1024} MiB"
    with Image.open(large) as grid:
        assert grid.size == (8 * 66 + 2, 375 * 66 + 2)
        pixels = np.asarray(grid)
    assert pixels[:2].min() == 255 and pixels[-2:].min() == 255  # make_grid's white border, top and bottom
    # distinct faces
    assert len({pixels[y : y + 64, 2:66].tobytes() for y in range(2, 375 * 66, 66 * 37)}) == 11
