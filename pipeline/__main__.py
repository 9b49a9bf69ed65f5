"""`python -m pipeline summary --data DIR`: the one-screen summary `make dataset` ends with."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import add_stage_options
from pipeline.dataset_counts import dataset_overview
from pipeline.errors import InputMissing
from pipeline.layout import Layout
from pipeline.runner import configure_logging, run_stage
from pipeline.summary import print_summary


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    summary = commands.add_parser("summary", help="summarise what the dataset stages wrote under --data")
    add_stage_options(summary, wait=False)
    return parser


def summary(args: argparse.Namespace) -> int:
    layout = Layout(args.data)
    if not layout.data.is_dir():
        raise InputMissing(f"no data directory at {layout.data}; run `make dataset` first")
    if not layout.raw_manifest.is_file():
        raise InputMissing(
            f"nothing crawled into {layout.data} yet (no {layout.raw_manifest}); run `make dataset` first"
        )
    print_summary(f"dataset in {args.data}", dataset_overview(args.data), stream=sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args, "pipeline")
    return run_stage("pipeline", lambda: summary(args))


if __name__ == "__main__":
    sys.exit(main())
