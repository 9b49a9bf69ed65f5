"""kill -9 of only a stage's main process leaves none of its processes behind.

facecrop and dedup run their work in a forkserver's worker processes. Before, killing just the
main process left the forkserver, the workers and the resource tracker alive for minutes; now
every worker watches the main process (`pipeline.lifeline`) and the rest follow. The test reads
/proc (psutil is not a dependency): it waits until the stage has its workers, kills the main
process, and waits for every process that descended from it to be gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pipeline.layout import Layout, rel_crop, rel_raw
from tests.helpers.cli import ok, run_stage, start_stage
from tests.helpers.crops import accepted_crop_row, crop_id_for, write_crops_manifest
from tests.helpers.processes import alive, descendants, wait_until
from tests.helpers.real_data import write_folder_config

pytestmark = pytest.mark.testdata


def dedup_data(root: Path, testdata: Path) -> tuple[Path, Path]:
    """1,500 shared faces as accepted crops: a few seconds of hashing on two workers."""
    data = root / "data"
    layout = Layout(data)
    layout.crops_dir.mkdir(parents=True)
    rows = []
    for face in sorted((testdata / "faces").iterdir())[:1500]:
        crop_id, sha = crop_id_for(face.name, 64)
        shutil.copy(face, layout.path(rel_crop(crop_id)))
        rows.append(accepted_crop_row(crop_id, sha, 64, rel_raw(sha, "jpg")))
    write_crops_manifest(data, rows)
    config = root / "dataset.toml"
    config.write_text("[dedup]\nworkers = 2\n")
    return data, config


def facecrop_data(root: Path, testdata: Path) -> tuple[Path, Path]:
    """The 66 shared full-size images, crawled from a folder: many seconds of detection on two workers."""
    config = write_folder_config(root / "dataset.toml", testdata / "full", workers=2)
    data = root / "data"
    ok(run_stage("crawler", data, config))
    return data, config


@pytest.mark.parametrize("name", ["facecrop", "dedup"])
def test_kill_9_of_the_main_process_leaves_no_process_behind(
    tmp_path: Path, testdata: Path, cascade_path: Path, name: str
) -> None:
    data, config = (facecrop_data if name == "facecrop" else dedup_data)(tmp_path, testdata)
    cascade = cascade_path if name == "facecrop" else None
    main = start_stage(
        name, data, config, cascade=cascade, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # The forkserver and both workers (and, for dedup, the resource tracker) have started.
        wait_until(lambda: len(descendants(main.pid)) >= 3 or main.poll() is not None, 120, "the workers")
        below = descendants(main.pid)
        assert main.poll() is None and len(below) >= 3, "the stage finished before its workers could be seen"
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        wait_until(lambda: not any(alive(pid) for pid in below), 10, f"processes {sorted(below)} to end")
    finally:
        if main.poll() is None:
            main.kill()
        for pid in descendants(main.pid):
            os.kill(pid, signal.SIGKILL)
