"""`make bench`: every stage's benchmark against its named baseline, in one run, with ratios.

Each stage contributes a module `bench/bench_<stage>.py` with
`run(data_dir: Path, testdata: Path) -> list[BenchResult]`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from bench.report import BenchResult, format_table
from pipeline.cli import add_stage_options
from pipeline.errors import ConfigError
from pipeline.runner import configure_logging, run_stage

STAGES = ("crawler", "facecrop", "detection", "align", "dedup", "train", "quality", "review")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_stage_options(parser, wait=False)
    parser.add_argument("--only", choices=STAGES, action="append", help="run only these stages' benchmarks")
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(
            os.environ.get("ANIMEFACE_TESTDATA", Path(__file__).resolve().parents[2] / "shared" / "testdata")
        ),
        help="the shared anime test images (default: ../shared/testdata or ANIMEFACE_TESTDATA)",
    )
    args = parser.parse_args(argv)
    configure_logging(args, "bench")
    return run_stage("bench", lambda: bench(args))


def bench(args: argparse.Namespace) -> int:
    if not args.testdata.is_dir():
        raise ConfigError(f"test images not found at {args.testdata}; pass --testdata DIR")
    results: list[BenchResult] = []
    missing = []
    for stage in args.only or STAGES:
        try:
            module = importlib.import_module(f"bench.bench_{stage}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.bench_{stage}":
                raise
            missing.append(stage)
            continue
        stage_results = module.run(args.data / "bench", args.testdata)
        print(format_table(stage_results), flush=True)
        results.extend(stage_results)
    print("\n== all benchmarks ==")
    print(format_table(results))
    if missing:
        print(f"(no benchmark yet for: {', '.join(missing)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
