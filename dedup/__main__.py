"""`python -m dedup --config FILE --data DIR`: one face per duplicate cluster, faces64/, the shard, the report."""

from __future__ import annotations

import argparse
import logging
import sys

from dedup.config import load_dedup_config
from pipeline.cli import add_common_arguments
from pipeline.config import read_config
from pipeline.errors import PipelineError
from pipeline.layout import Layout
from pipeline.runner import add_output_arguments, configure_logging, run_stage, show_progress
from pipeline.summary import print_summary


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dedup",
        description="Remove exact and near-duplicate faces; write 64x64 PNGs, the training shard and a report.")
    add_common_arguments(parser)
    parser.add_argument("--workers", type=int, default=None, help="hashing processes (overrides [dedup] workers)")
    add_output_arguments(parser)
    return parser


def dedup(args: argparse.Namespace, log: logging.Logger) -> int:
    table = read_config(args.config)
    if args.workers is not None:
        table.setdefault("dedup", {})["workers"] = args.workers
    cfg = load_dedup_config(table)
    log.debug("settings: %s", cfg)
    from dedup.run import run  # after the config check, so a typo fails before heavy imports

    outcome = run(args.data, cfg, progress=show_progress(args))
    print_summary("dedup", outcome.counts)
    layout = Layout(args.data)
    if not outcome.kept:
        raise PipelineError(f"none of the accepted crops is usable (see {layout.dropped_log}); the shard is empty")
    log.info("%d faces in %s, shard %s, report %s", len(outcome.kept), layout.faces_dir, layout.shard_npy,
             layout.dedup_report)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = configure_logging(args, "dedup")
    return run_stage("dedup", lambda: dedup(args, log),
                     interrupted="interrupted; finished work is saved, run again to continue")


if __name__ == "__main__":
    sys.exit(main())
