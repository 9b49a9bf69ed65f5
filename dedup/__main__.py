"""`python -m dedup --config FILE --data DIR`: one face per duplicate cluster, faces64/, the shard, the report.

`python -m dedup export --format imagefolder|webdataset|parquet --out DIR` writes the finished shard
in a format other tools read (`dedup.export`); --config/--data and the output switches may
stand before or after the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dedup import config as dedup_config
from pipeline.cli import add_stage_options
from pipeline.config import read_config
from pipeline.errors import PipelineError
from pipeline.layout import Layout
from pipeline.runner import (
    configure_logging,
    run_stage,
    show_progress,
)
from pipeline.summary import print_summary


def parser() -> argparse.ArgumentParser:
    """`python -m dedup` runs dedup; `python -m dedup export ...` writes the finished shard elsewhere."""
    top = argparse.ArgumentParser(
        prog="python -m dedup",
        description="Remove exact and near-duplicate faces; write 64x64 PNGs, the training shard and a report.",
        epilog="Without a subcommand: dedup. See `python -m dedup export --help`.",
    )
    add_stage_options(top)
    top.add_argument(
        "--workers", type=int, default=None, help="hashing processes (overrides [dedup] workers)"
    )
    top.add_argument(
        "--verify",
        action="store_true",
        help="check every cached thumbnail and faces64 PNG by hash (a plain run checks sizes and mtimes)",
    )
    commands = top.add_subparsers(dest="command", metavar="[SUBCOMMAND]")
    _add_export_command(commands)
    return top


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    from dedup.export import DEFAULT_ROW_GROUP, DEFAULT_SAMPLES_PER_SHARD, FORMATS

    text = "Write the shard, its metadata and its dataset card in a format other tools read."
    parser = commands.add_parser("export", help=text, description=text, prog="python -m dedup export")
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="imagefolder (datasets), webdataset (tar shards) or parquet (pyarrow)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write (new, empty, or an earlier export)"
    )
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        default=DEFAULT_SAMPLES_PER_SHARD,
        help=f"webdataset: samples per tar (default {DEFAULT_SAMPLES_PER_SHARD})",
    )
    parser.add_argument(
        "--row-group-size",
        type=int,
        default=DEFAULT_ROW_GROUP,
        help=f"parquet: rows per row group (default {DEFAULT_ROW_GROUP})",
    )
    # Given after `export` they win; left out, the values given before it (or the defaults) stand.
    add_stage_options(parser, subcommand=True)


def dedup(args: argparse.Namespace, log: logging.Logger) -> int:
    table = read_config(args.config)
    if args.workers is not None:
        table.setdefault("dedup", {})["workers"] = args.workers
    cfg = dedup_config.load(table)
    log.debug("settings: %s", cfg)
    from dedup.run import run  # after the config check, so a typo fails before heavy imports

    outcome = run(args.data, cfg, progress=show_progress(args), verify=args.verify)
    print_summary("dedup", outcome.counts)
    layout = Layout(args.data)
    if not outcome.kept:
        raise PipelineError(
            f"none of the accepted crops is usable (see {layout.dropped_log}); the shard is empty"
        )
    from dedup.card import CardInputs, write_card

    write_card(layout, CardInputs(Path(args.config), str(args.data)))
    log.info(
        "%d faces in %s, shard %s, card %s, report %s",
        len(outcome.kept),
        layout.faces_dir,
        layout.shard_npy,
        layout.shard_card,
        layout.dedup_report,
    )
    return 0


def export(args: argparse.Namespace, log: logging.Logger) -> int:
    import time

    from dedup.card import CardInputs, card_matches_shard, write_card
    from dedup.export import Options, export, summary

    options = Options(args.format, args.out, args.samples_per_shard, args.row_group_size)
    layout = Layout(args.data)
    started = time.perf_counter()
    from pipeline.shard import open_shard

    # a missing or unfinished shard is exit 4 before anything is written
    open_shard(layout.data, verify=False)
    if not card_matches_shard(layout):  # written by dedup with the shard; only an older DATA lacks it
        write_card(layout, CardInputs(Path(args.config), str(args.data)))
    result = export(layout, options, progress=show_progress(args))
    print_summary("dedup export", summary(result, options, time.perf_counter() - started))
    log.debug("files: %s", ", ".join(result.files[:20]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = configure_logging(args, "dedup")
    if args.command == "export":
        # Held like a dedup run: the export may write the card into DATA, and must not read a half-rebuilt shard.
        return run_stage(
            "dedup",
            lambda: export(args, log),
            interrupted="interrupted; finished export files are kept, run again to finish",
            data=args.data,
            wait=args.wait,
        )
    return run_stage(
        "dedup",
        lambda: dedup(args, log),
        interrupted="interrupted; finished work is saved, run again to continue",
        data=args.data,
        wait=args.wait,
    )


if __name__ == "__main__":
    sys.exit(main())
