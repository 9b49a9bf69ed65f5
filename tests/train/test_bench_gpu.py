"""`make bench-gpu` rehearsed on the CPU at tiny sizes, end to end, so the script is known to run on the
day a GPU is lent: the cuda tests (skipped here, with their reason), every throughput variant, the
quality row, the JSON and the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from train_cli import REPO


@pytest.mark.slow
def test_bench_gpu_runs_end_to_end_on_cpu(tmp_path, testdata):
    out = tmp_path / "bench-gpu.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_gpu",
            "--device",
            "cpu",
            "--tiny",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--testdata",
            str(testdata),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["environment"]["torch"] and report["environment"]["device"] == "cpu"
    tests = report["tests"]
    assert tests["tests"] >= 8 and tests["skipped"] == tests["tests"], tests  # no GPU here: every one skips
    assert all("needs a CUDA GPU" in outcome for outcome in tests["cases"].values())

    rows = report["throughput"]
    assert {(r["loop"], r["precision"]) for r in rows} == {
        ("example", "fp32"),
        ("ours", "fp32"),
        ("ours", "bf16"),
    }
    for r in rows:
        assert "error" not in r, r
        assert r["img_per_s"] > 0 and r["epoch_60k_s"] > 0
    assert all(r["vs_example"] > 0 for r in rows if r["loop"] == "ours")

    names = [q["name"] for q in report["quality"]]
    assert any("equal steps" in n for n in names) and any("equal wall-clock" in n for n in names), report[
        "quality"
    ]
    assert all(
        q["ours"] > 0 and q["baseline"] > 0 and "FID over 8 samples" in report["quality"][0]["note"]
        for q in report["quality"]
    )
    assert "vs example" in proc.stdout and "quality: FID at equal steps" in proc.stdout


def test_bench_gpu_lists_what_its_time_budget_left_out(tmp_path, testdata):
    """Past --budget-s no new variant starts: each is listed as not run, and the command still succeeds."""
    out = tmp_path / "bench-gpu.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_gpu",
            "--device",
            "cpu",
            "--tiny",
            "--skip-tests",
            "--budget-s",
            "0",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--testdata",
            str(tmp_path / "no-faces"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["throughput"] and all(r["not_run"] == "time budget spent" for r in report["throughput"])
    assert "budget" in report["quality"][0]["not_run"] and "synthetic" in report["faces"]
    assert "not run: time budget spent" in proc.stdout
