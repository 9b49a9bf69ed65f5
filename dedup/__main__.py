"""`python -m dedup --config FILE --data DIR`."""

from __future__ import annotations

import argparse
import sys

from dedup.config import load_dedup_config
from dedup.inputs import InputError
from pipeline.cli import add_common_arguments
from pipeline.config import ConfigError, read_config
from pipeline.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dedup",
        description="Remove exact and near-duplicate faces; write 64x64 PNGs, the training shard and a report.")
    add_common_arguments(parser)
    parser.add_argument("--workers", type=int, default=None, help="hashing processes (overrides [dedup] workers)")
    args = parser.parse_args(argv)
    try:
        table = read_config(args.config)
        if args.workers is not None:
            table.setdefault("dedup", {})["workers"] = args.workers
        cfg = load_dedup_config(table)
    except ConfigError as exc:
        print(f"dedup: {exc}", file=sys.stderr)
        return 2
    from dedup.run import run  # after the config check, so a typo fails before heavy imports

    try:
        outcome = run(args.data, cfg)
    except InputError as exc:
        print(f"dedup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dedup: interrupted; finished work is saved, run again to continue", file=sys.stderr)
        return 130
    print_summary("dedup", outcome.counts)
    if not outcome.kept:
        print(f"dedup: none of the accepted crops is usable (see {args.data / 'dedup' / 'dropped.jsonl'}); "
              "the shard is empty", file=sys.stderr)
        return 1
    print(f"dedup: {len(outcome.kept)} faces in {args.data / 'faces64'}, shard {args.data / 'shards' / 'faces64.npy'}, "
          f"report {args.data / 'dedup' / 'report.html'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
