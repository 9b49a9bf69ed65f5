"""kill -9 in the middle of a run, then re-run: the same manifest and files as one clean run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import REPO, facecrop, read_manifest

pytestmark = [pytest.mark.testdata, pytest.mark.slow]


def _committed(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM sources").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_mid_run_then_rerun_equals_one_clean_run(full_run, clean_full_manifest, tmp_path, cascade_path):
    data = tmp_path / "data"
    shutil.copytree(full_run["data"] / "raw", data / "raw")
    args = ["--config", str(full_run["config"]), "--data", str(data), "--no-progress", "--cascade", str(cascade_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecrop", *args],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the workers too, and only them
    )
    db = data / "crops" / "facecrop.sqlite"
    deadline = time.monotonic() + 120
    try:
        while _committed(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _committed(db)
    assert 0 < done_before < len(full_run["raw"]), "the kill should land mid-run"
    assert not (data / "crops" / "manifest.jsonl").exists()

    result = facecrop(*args[:-2], cascade=cascade_path)
    assert f"images processed now               {len(full_run['raw']) - done_before}" in result.stderr

    ours = (data / "crops" / "manifest.jsonl").read_bytes()
    assert ours == clean_full_manifest
    ours_rows = read_manifest(data)
    files = sorted(p.relative_to(data).as_posix() for p in data.glob("crops/*.png"))
    files += sorted(p.relative_to(data).as_posix() for p in data.glob("rejects/*/*.png"))
    assert sorted(files) == sorted(r["path"] for r in ours_rows if r["path"])
    assert not list(data.rglob(".tmp-*"))
