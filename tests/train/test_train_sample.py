"""`python -m train sample` turns a checkpoint into grids: plain, truncated, per label, interpolated."""

from __future__ import annotations

import pytest
from PIL import Image

from pipeline.layout import RunLayout
from tests.helpers.train import run_train, train_args, write_train_config


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A 4-step conditional (AC-GAN) run on a labelled random shard, shared by this module's tests."""
    import numpy as np

    from train.shard import write_shard

    root = tmp_path_factory.mktemp("cond")
    rng = np.random.default_rng(1)
    colors = ["blue", "red", None, "blonde"]
    write_shard(
        root / "data",
        rng.integers(0, 256, (48, 64, 64, 3), dtype=np.uint8),
        hair_color=[colors[i % 4] for i in range(48)],
    )
    cfg = write_train_config(root / "c.toml", conditional=True)
    run_train(
        train_args(cfg, root / "data", root / "runs", "--max-steps", "4", run="c"),
        root,
        check=True,
    )
    return root


def _sample(root, *args):
    return run_train(["sample", "--ckpt", str(RunLayout.of(root / "runs", "c").last), *args], root)


def test_run_writes_samples_real_grid_metrics_and_loss_curve(conditional_run):
    run = RunLayout.of(conditional_run / "runs", "c")
    for path in (run.last, run.metrics, run.loss_curve, run.real_grid, run.sample_grid(4)):
        assert path.is_file(), path
    assert Image.open(run.sample_grid(4)).size == (8 * 66 + 2, 8 * 66 + 2)


def test_grid_of_64(conditional_run):
    out = conditional_run / "grid.png"
    proc = _sample(conditional_run, "--n", "64", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (8 * 66 + 2, 8 * 66 + 2)


def test_truncation_and_label(conditional_run):
    out = conditional_run / "blue.png"
    proc = _sample(conditional_run, "--n", "16", "--truncation", "0.5", "--label", "blue", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (8 * 66 + 2, 2 * 66 + 2)


def test_unknown_label_is_one_line_listing_the_labels(conditional_run):
    proc = _sample(conditional_run, "--label", "green", "--out", str(conditional_run / "x.png"))
    assert proc.returncode == 2
    assert "blonde, blue, red" in proc.stderr and "Traceback" not in proc.stderr


def test_interpolation_rows(conditional_run):
    out = conditional_run / "interp.png"
    proc = _sample(conditional_run, "--n", "30", "--interpolate", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 30 images" in proc.stderr
    assert Image.open(out).size == (10 * 66 + 2, 3 * 66 + 2)


def test_missing_checkpoint_is_one_line(tmp_path):
    proc = run_train(["sample", "--ckpt", str(tmp_path / "nope.pt")], tmp_path)
    assert proc.returncode == 4  # InputMissing: train has not written it
    assert "no checkpoint at" in proc.stderr and "Traceback" not in proc.stderr


def test_same_seed_same_images_and_truncation_changes_them(conditional_run):
    """Sampling is reproducible from --seed; truncation changes the latents and hence the pixels."""
    import numpy as np

    paths = {}
    for name, extra in (("a", []), ("b", []), ("t", ["--truncation", "0.3"])):
        paths[name] = conditional_run / f"seed_{name}.png"
        _sample(conditional_run, "--n", "8", "--out", str(paths[name]), *extra)
    a, b, t = (np.asarray(Image.open(paths[k])) for k in "abt")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, t)
