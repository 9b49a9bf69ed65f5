"""kill -9 of only a stage's main process leaves none of its processes behind.

facecrop and dedup run their work in a forkserver's worker processes. Before, killing just the
main process left the forkserver, the workers and the resource tracker alive for minutes; now
every worker watches the main process (`pipeline.lifeline`) and the rest follow. The test reads
/proc (psutil is not a dependency): it waits until the stage has its workers, kills the main
process, and waits for every process that descended from it to be gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_lib import REPO, env, ok, stage, write_config

from bench.bench_dedup import accepted_crop_row
from pipeline.layout import Layout, rel_crop

pytestmark = pytest.mark.testdata


def descendants(root: int) -> set[int]:
    """Live (non-zombie) processes below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def dedup_data(root: Path, testdata: Path) -> tuple[Path, Path]:
    """1,500 shared faces as accepted crops: a few seconds of hashing on two workers."""
    data = root / "data"
    layout = Layout(data)
    layout.crops_dir.mkdir(parents=True)
    rows = []
    for face in sorted((testdata / "faces").iterdir())[:1500]:
        sha = hashlib.sha256(face.name.encode()).hexdigest()
        crop_id = f"{sha[:12]}_0_0_64_64"
        shutil.copy(face, layout.path(rel_crop(crop_id)))
        rows.append(accepted_crop_row(crop_id, sha, 64, f"raw/{sha}.jpg"))
    layout.crops_manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = root / "dataset.toml"
    config.write_text("[dedup]\nworkers = 2\n")
    return data, config


def facecrop_data(root: Path, testdata: Path) -> tuple[Path, Path]:
    """The 66 shared full-size images, crawled from a folder: many seconds of detection on two workers."""
    config = write_config(root / "dataset.toml", testdata / "full", "")
    config.write_text(config.read_text().replace("[facecrop]\nworkers = 1", "[facecrop]\nworkers = 2"))
    data = root / "data"
    ok(stage("crawler", data, config))
    return data, config


@pytest.mark.parametrize("name", ["facecrop", "dedup"])
def test_kill_9_of_the_main_process_leaves_no_process_behind(
    tmp_path: Path, testdata: Path, cascade_path: Path, name: str
) -> None:
    data, config = (facecrop_data if name == "facecrop" else dedup_data)(tmp_path, testdata)
    command = [sys.executable, "-m", name, "--config", str(config), "--data", str(data), "--no-progress"]
    if name == "facecrop":
        command += ["--cascade", str(cascade_path)]
    main = subprocess.Popen(
        command, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
