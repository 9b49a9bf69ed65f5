"""Session fixtures for facecrop's tests: one real run over the shared images, reused read-only."""

from __future__ import annotations

import pytest

from pipeline.layout import Layout
from tests.helpers.cli import run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.raw import shared_images, store_raw, write_raw_manifest


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, testdata, cascade_path):
    """One real run over full/ + negative/ (82 images), shared by the tests that only read it.

    One title is a script tag, as a hostile or sloppy site could serve.
    """
    data = tmp_path_factory.mktemp("full") / "data"
    files = shared_images(testdata, "full", "negative")
    rows = store_raw(data, files)
    hostile = next(r for r in rows if r["meta"]["title"] == "gfpgan_realphoto__00.jpg")  # a rejected source
    hostile["meta"] = {"title": "<script>alert(1)</script>", "character": "<img src=x onerror=alert(2)>"}
    write_raw_manifest(data, rows)
    config = write_facecrop_config(data.parent / "dataset.toml")
    result = run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    return {"data": data, "config": config, "raw": rows, "files": files, "stderr": result.stderr}


@pytest.fixture(scope="session")
def clean_full_manifest(full_run) -> bytes:
    return Layout(full_run["data"]).crops_manifest.read_bytes()
