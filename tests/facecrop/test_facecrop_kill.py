"""kill -9 in the middle of a run, then re-run: the same manifest and files as one clean run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.layout import Layout
from tests.helpers.cli import run_stage, start_stage
from tests.helpers.crops import read_crops_manifest
from tests.helpers.processes import descendants, parent_of

pytestmark = [pytest.mark.testdata, pytest.mark.slow]


def _committed(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM sources").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _raw_copy(full_run, tmp_path: Path) -> Layout:
    """A DATA holding only a copy of full_run's raw store: facecrop has every image still to do."""
    layout = Layout(tmp_path / "data")
    shutil.copytree(Layout(full_run["data"]).raw_dir, layout.raw_dir)
    return layout


def _start_facecrop(full_run, layout: Layout, cascade_path: Path, **popen) -> subprocess.Popen:
    """facecrop on `layout`, in its own process group: a signal to the group reaches the workers too, and only them."""
    return start_stage(
        "facecrop", layout.data, full_run["config"], cascade=cascade_path, start_new_session=True, **popen
    )


def test_kill_mid_run_then_rerun_equals_one_clean_run(full_run, clean_full_manifest, tmp_path, cascade_path):
    layout = _raw_copy(full_run, tmp_path)
    data = layout.data
    proc = _start_facecrop(
        full_run, layout, cascade_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = layout.facecrop_state
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
    assert not layout.crops_manifest.exists()

    result = run_stage("facecrop", data, full_run["config"], cascade=cascade_path, check=True)
    assert f"images processed now               {len(full_run['raw']) - done_before}" in result.stderr

    ours = layout.crops_manifest.read_bytes()
    assert ours == clean_full_manifest
    ours_rows = read_crops_manifest(data)
    files = sorted(p.relative_to(data).as_posix() for p in layout.crops_dir.glob("*.png"))
    files += sorted(p.relative_to(data).as_posix() for p in layout.rejects_dir.glob("*/*.png"))
    assert sorted(files) == sorted(r["path"] for r in ours_rows if r["path"])
    assert not list(data.rglob(".tmp-*"))


def test_a_worker_killed_mid_run_is_recovered_without_loss(
    full_run, clean_full_manifest, tmp_path, cascade_path
):
    """The OOM killer or a native crash takes one worker: its images are retried, nothing is lost."""
    layout = _raw_copy(full_run, tmp_path)
    proc = _start_facecrop(full_run, layout, cascade_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = layout.facecrop_state
    deadline = time.monotonic() + 120
    victim = None
    try:
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            if _committed(db) > 0:
                # Workers are the grandchildren (main -> fork server -> workers); take one.
                below = sorted(descendants(proc.pid))
                grandchildren = [p for p in below if parent_of(p) not in (proc.pid, -1)]
                if grandchildren:
                    victim = grandchildren[0]
                    os.kill(victim, signal.SIGKILL)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert victim is not None, "the run ended before a worker could be killed"
    assert proc.returncode == 0, stderr
    assert "a worker process died" in stderr
    assert layout.crops_manifest.read_bytes() == clean_full_manifest


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(full_run, clean_full_manifest, tmp_path, cascade_path):
    layout = _raw_copy(full_run, tmp_path)
    proc = _start_facecrop(full_run, layout, cascade_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = layout.facecrop_state
    deadline = time.monotonic() + 120
    try:
        while _committed(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the whole group
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted; finished images are saved" in stderr and "Traceback" not in stderr
    assert 0 < _committed(db) < len(full_run["raw"])
    run_stage("facecrop", layout.data, full_run["config"], cascade=cascade_path, check=True)
    assert layout.crops_manifest.read_bytes() == clean_full_manifest
