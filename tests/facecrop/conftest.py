"""Session fixtures for facecrop's tests: one real run over the shared images, reused read-only."""

from __future__ import annotations

import pytest
from facecrop_testlib import build_data, facecrop, shared_images, write_config, write_raw_manifest


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, testdata, cascade_path):
    """One real run over full/ + negative/ (82 images), shared by the tests that only read it.

    One title is a script tag, as a hostile or sloppy site could serve.
    """
    data = tmp_path_factory.mktemp("full") / "data"
    files = shared_images(testdata, "full", "negative")
    rows = build_data(data, files)
    hostile = next(r for r in rows if r["meta"]["title"] == "gfpgan_realphoto__00.jpg")  # a rejected source
    hostile["meta"] = {"title": "<script>alert(1)</script>", "character": "<img src=x onerror=alert(2)>"}
    write_raw_manifest(data, rows)
    config = write_config(data.parent / "dataset.toml")
    result = facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    return {"data": data, "config": config, "raw": rows, "files": files, "stderr": result.stderr}


@pytest.fixture(scope="session")
def clean_full_manifest(full_run) -> bytes:
    return (full_run["data"] / "crops" / "manifest.jsonl").read_bytes()
