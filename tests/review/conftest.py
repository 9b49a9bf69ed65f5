"""Fixtures for the review app's tests; their helpers are tests/helpers/review.py's and browser.py's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.cli import run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.raw import store_raw
from tests.helpers.review import FILES, HOSTILE


@pytest.fixture(scope="session")
def pipeline_data(tmp_path_factory, testdata: Path, cascade_path: Path) -> dict:
    """DATA after a real facecrop and dedup run over a few shared images (copied into tmp, never the repo)."""
    root = tmp_path_factory.mktemp("review-pipeline")
    data = root / "data"
    files = [testdata / name for name in FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        pytest.skip(f"shared test images missing: {', '.join(missing)}")
    store_raw(data, files, titles={"gfpgan_realphoto__00.jpg": HOSTILE}, character="someone")
    config = write_facecrop_config(root / "dataset.toml")
    run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    run_stage("dedup", data, config, check=True)
    return {"data": data, "config": config, "cascade": cascade_path}


@pytest.fixture
def fresh_data(pipeline_data: dict, tmp_path: Path) -> dict:
    """A private copy of `pipeline_data`, so each test's decisions start from none."""
    data = tmp_path / "data"
    shutil.copytree(pipeline_data["data"], data)
    config = tmp_path / "dataset.toml"
    shutil.copy(pipeline_data["config"], config)
    return {"data": data, "config": config, "cascade": pipeline_data["cascade"]}
