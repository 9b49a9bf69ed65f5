"""`python -m pipeline summary --data DIR`: the one-screen summary `make dataset` ends with."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import add_common_arguments
from pipeline.overview import dataset_overview
from pipeline.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="summarise what the dataset stages wrote under --data")
    add_common_arguments(summary)
    args = parser.parse_args(argv)
    if args.command == "summary":
        if not args.data.is_dir():
            print(f"pipeline: no data directory at {args.data}; run `make dataset` first", file=sys.stderr)
            return 2
        print_summary(f"dataset in {args.data}", dataset_overview(args.data), stream=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
