"""kill -9 at the worst moments: while the shard is being written, and while crops are hashed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.digest import file_digest
from pipeline.layout import Layout
from pipeline.shard import open_shard
from tests.helpers.cli import REPO, cli_env, start_cli
from tests.helpers.crops import run_dedup, write_crop, write_crops_manifest
from tests.helpers.files import jsonl_rows
from tests.helpers.processes import wait_until

pytestmark = pytest.mark.testdata

SLOW_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from pipeline.shard import write_shard

def rows():
    for k in range(400):
        if k == 5:
            print("writing", flush=True)
        time.sleep(0.02)
        yield np.full((64, 64, 3), k % 256, np.uint8)

write_shard(Path(sys.argv[1]), rows(), 400, (64, 64, 3), ids=[str(k) for k in range(400)],
            labels={"hair_color": [None] * 400}, config={})
"""


def test_kill_during_shard_writing_leaves_the_previous_shard_intact(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    write_crops_manifest(data, [write_crop(data, Image.open(p).convert("RGB"), p.name) for p in faces[:10]])
    run_dedup(data)
    npy, meta_path = Layout(data).shard_npy, Layout(data).shard_json
    before = (npy.read_bytes(), meta_path.read_text())

    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(data)],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        temps = list(Layout(data).shards_dir.glob(".tmp-*"))
        assert temps and temps[0].stat().st_size > 0  # really mid-write
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert (npy.read_bytes(), meta_path.read_text()) == before
    opened = open_shard(data)
    assert opened.count == 10 and opened.sha256 == file_digest(npy)

    # The next run sweeps the torn temp file and finds the shard already current.
    out = run_dedup(data).stderr
    assert not list(Layout(data).shards_dir.glob(".tmp-*"))
    assert "shard                           unchanged" in out


def test_kill_during_hashing_then_rerun_finishes_with_nothing_lost_or_duplicated(
    tmp_path: Path, faces
) -> None:
    data = tmp_path / "data"
    # all 2,000: hashing outlasts the first commit
    rows = [write_crop(data, Image.open(p).convert("RGB"), p.name) for p in faces]
    write_crops_manifest(data, rows)
    config = tmp_path / "c.toml"
    config.write_text("[dedup]\nworkers = 1\n")
    proc = start_cli(
        "dedup", "--config", config, "--data", data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = Layout(data).dedup_state

    def some_hashed() -> bool:
        if not state.exists():
            return False
        try:
            with sqlite3.connect(state, timeout=1) as db:
                return db.execute("SELECT count(*) FROM prints").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False

    try:
        wait_until(some_hashed, 60, "a first committed hash")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with sqlite3.connect(state) as db:
        done = db.execute("SELECT count(*) FROM prints").fetchone()[0]
    assert 0 < done < len(rows)

    out = run_dedup(data).stderr
    assert f"hashed this run                 {len(rows) - done}" in out
    manifest = jsonl_rows(Layout(data).faces_manifest)
    ids = [row["id"] for row in manifest]
    accounted = set(ids) | {row["id"] for row in jsonl_rows(Layout(data).dropped_log)}
    assert len(ids) == len(set(ids)) and accounted == {r["id"] for r in rows}
    assert not list(data.rglob(".tmp-*"))
    meta = json.loads(Layout(data).shard_json.read_text())
    assert meta["ids"] == sorted(ids)
    assert np.load(Layout(data).shard_npy).shape[0] == len(ids)
