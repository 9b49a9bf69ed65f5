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
from facecrop_testlib import REPO, facecrop, read_manifest

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
    args = [
        "--config",
        str(full_run["config"]),
        "--data",
        str(data),
        "--no-progress",
        "--cascade",
        str(cascade_path),
    ]
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


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_a_worker_killed_mid_run_is_recovered_without_loss(
    full_run, clean_full_manifest, tmp_path, cascade_path
):
    """The OOM killer or a native crash takes one worker: its images are retried, nothing is lost."""
    data = tmp_path / "data"
    shutil.copytree(full_run["data"] / "raw", data / "raw")
    args = [
        "--config",
        str(full_run["config"]),
        "--data",
        str(data),
        "--no-progress",
        "--cascade",
        str(cascade_path),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecrop", *args],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    db = data / "crops" / "facecrop.sqlite"
    deadline = time.monotonic() + 120
    victim = None
    try:
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            if _committed(db) > 0:
                # Workers are the grandchildren (main -> fork server -> workers); take one.
                grandchildren = [p for p in _descendants(proc.pid) if p not in _children(proc.pid)]
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
    assert (data / "crops" / "manifest.jsonl").read_bytes() == clean_full_manifest


def _children(pid: int) -> list[int]:
    return [p for p in _descendants(pid) if _parent(p) == pid]


def _parent(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])  # noqa: SIM115
    except OSError:
        return -1


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(full_run, clean_full_manifest, tmp_path, cascade_path):
    data = tmp_path / "data"
    shutil.copytree(full_run["data"] / "raw", data / "raw")
    args = [
        "--config",
        str(full_run["config"]),
        "--data",
        str(data),
        "--no-progress",
        "--cascade",
        str(cascade_path),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facecrop", *args],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    db = data / "crops" / "facecrop.sqlite"
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
    facecrop(*args[:-2], cascade=cascade_path)
    assert (data / "crops" / "manifest.jsonl").read_bytes() == clean_full_manifest
