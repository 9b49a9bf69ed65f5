"""A real DATA built by the real stages: the crawler stores a folder of shared images, facecrop crops
them, dedup publishes faces64/ and the shard. The reliability tests copy it, damage the copy and run
a stage on it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.cli import ok, run_stage
from tests.helpers.configs import write_folder_config


def build_pipeline(root: Path, images: list[Path], cascade: Path) -> tuple[Path, Path]:
    """crawl -> facecrop -> dedup over copies of `images` under `root`; returns (DATA, config)."""
    art = root / "art"
    art.mkdir(parents=True)
    for image in images:
        shutil.copy(image, art / image.name)
    config = write_folder_config(root / "dataset.toml", art)
    data = root / "data"
    ok(run_stage("crawler", data, config))
    ok(run_stage("facecrop", data, config, cascade=cascade))
    ok(run_stage("dedup", data, config))
    return data, config
