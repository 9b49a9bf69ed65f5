"""Fixtures for the review app's tests; helpers live in review_support.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from review_support import FILES, HOSTILE, raw_data, stage  # noqa: E402


@pytest.fixture(scope="session")
def pipeline_data(tmp_path_factory, testdata: Path, cascade_path: Path) -> dict:
    """DATA after a real facecrop and dedup run over a few shared images (copied into tmp, never the repo)."""
    root = tmp_path_factory.mktemp("review-pipeline")
    data = root / "data"
    files = [testdata / name for name in FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        pytest.skip(f"shared test images missing: {', '.join(missing)}")
    raw_data(data, files, titles={"gfpgan_realphoto__00.jpg": HOSTILE})
    config = root / "dataset.toml"
    config.write_text("[facecrop]\n")
    stage(
        "facecrop",
        "--config",
        str(config),
        "--data",
        str(data),
        "--no-progress",
        "--cascade",
        str(cascade_path),
    )
    stage("dedup", "--config", str(config), "--data", str(data), "--no-progress")
    return {"data": data, "config": config, "cascade": cascade_path}


@pytest.fixture
def fresh_data(pipeline_data: dict, tmp_path: Path) -> dict:
    """A private copy of `pipeline_data`, so each test's decisions start from none."""
    data = tmp_path / "data"
    shutil.copytree(pipeline_data["data"], data)
    config = tmp_path / "dataset.toml"
    shutil.copy(pipeline_data["config"], config)
    return {"data": data, "config": config, "cascade": pipeline_data["cascade"]}
