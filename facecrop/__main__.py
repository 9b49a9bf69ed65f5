"""`python -m facecrop [run|promote|demote|rejects|evaluate] [--config F --data D --cascade PATH]`.

No subcommand means `run`. The common options are accepted before or after the
subcommand, because `make rejects` and people type them in both places.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from facecrop import listing, manifest, rejects_page
from facecrop.config import FacecropConfig, load
from facecrop.promote import overrule
from pipeline import atomic
from pipeline.cli import add_stage_options
from pipeline.config import read_config
from pipeline.decisions import DEFAULT_DEMOTE_REASON
from pipeline.errors import InputMissing
from pipeline.layout import Layout
from pipeline.runner import (
    configure_logging,
    run_stage,
    show_progress,
)
from pipeline.summary import print_summary

DESCRIPTIONS = {
    "run": "Detect anime faces in DATA/raw/, write accepted crops and inspectable rejects.",
    "promote": "Accept crops the rules rejected; recorded in crops/overrides.jsonl and kept by every run.",
    "demote": "Reject crops the rules accepted, with your reason; recorded in crops/overrides.jsonl.",
    "rejects": "List rejects with counts per reason, or (--html) rebuild DATA/rejects/index.html.",
    "evaluate": "Precision, recall and F1 of a run's settings against face boxes people drew; writes nothing.",
}


def _shared_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    add_stage_options(parser, subcommand=not defaults)
    parser.add_argument(
        "--cascade",
        default=None if defaults else argparse.SUPPRESS,
        help="lbpcascade_animeface.xml (default: $ANIMEFACE_CASCADE, DATA/models/, download)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m facecrop",
        description=DESCRIPTIONS["run"],
        epilog="Without a subcommand: run. See `python -m facecrop SUBCOMMAND --help`.",
    )
    _shared_options(top, defaults=True)
    commands = top.add_subparsers(dest="command", metavar="[SUBCOMMAND]")
    sub = {
        name: commands.add_parser(name, help=text, description=text) for name, text in DESCRIPTIONS.items()
    }
    for command in sub.values():
        _shared_options(command, defaults=False)
    for command, defaults in ((top, True), (sub["run"], False)):
        command.add_argument(
            "--verify",
            action="store_true",
            default=False if defaults else argparse.SUPPRESS,
            help="check every crop and raw image by sha256 (a plain run checks sizes and mtimes)",
        )
    for name in ("promote", "demote"):
        sub[name].add_argument("ids", nargs="+", metavar="ID", help="crop ids as in crops/manifest.jsonl")
    sub["demote"].add_argument(
        "--reason", default=DEFAULT_DEMOTE_REASON, help="why (a-z0-9_-; default: manual)"
    )
    sub["rejects"].add_argument("--reason", help="list only rejects with this reason")
    sub["rejects"].add_argument(
        "--html", action="store_true", help="(re)build DATA/rejects/index.html and print its path"
    )
    _evaluate_options(sub["evaluate"])
    return top


def _evaluate_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--boxes",
        type=Path,
        required=True,
        help='JSON {file: {"size": [w, h], "boxes": [[x, y, w, h], ...]}} (docs/facecrop.md)',
    )
    command.add_argument("--images", type=Path, required=True, help="the folder the boxes' file names are in")
    command.add_argument("--negatives", type=Path, help="a folder of images without anime faces")
    command.add_argument(
        "--show", type=Path, help="write misses.png and false_boxes.png (contact sheets) here"
    )
    command.add_argument("--json", type=Path, help="write every number, and each lost face, as JSON here")


def crop(args: argparse.Namespace, config: FacecropConfig, log: logging.Logger) -> int:
    from facecrop.cascade import load_cascade, resolve_cascade
    from facecrop.run import run
    from facecrop.sources import require_raw_manifest

    require_raw_manifest(args.data)  # before the cascade, which may be a download
    cascade_path = resolve_cascade(args.cascade, args.data)
    load_cascade(cascade_path)  # fail here, once, with a clear message, rather than in every worker
    result = run(config, args.data, cascade_path, progress=show_progress(args), verify=args.verify)
    print_summary("facecrop", result.counts)
    log.info("rejects page: %s", result.page)
    if result.counts["faces"] == 0:
        log.warning(
            "no faces found in any image; see why with `make rejects` (or `python -m facecrop rejects`)"
        )
    return 0


def rejects(args: argparse.Namespace, config: FacecropConfig) -> int:
    path = Layout(args.data).crops_manifest
    if not path.exists():
        raise InputMissing(f"no crops manifest at {path}; run `python -m facecrop` first")
    rows = manifest.read_manifest(args.data)
    if args.html:
        page = rejects_page.build(args.data, rows, config.thresholds)
        data = rejects_page.page_data(args.data, rows, config.thresholds)
        print(page)
        print_summary(
            "facecrop rejects",
            {"rejected": data["totals"]["rejected"], "by reason": data["counts"] or {"(none)": 0}},
            sys.stdout,
        )
        return 0
    print(listing.format_listing(rows, config.thresholds, args.reason))
    return 0


def evaluate(args: argparse.Namespace, config: FacecropConfig) -> int:
    from facecrop import contact_sheet
    from facecrop import evaluate as measure
    from facecrop.cascade import load_cascade, resolve_cascade

    labelled = measure.load_boxes(args.boxes)
    cascade_path = resolve_cascade(args.cascade, args.data)
    load_cascade(cascade_path)
    images = measure.collect(config, cascade_path, labelled, args.images, args.negatives, show_progress(args))
    result = measure.report(images, config.thresholds)
    print(measure.format_report(result))
    if args.json:
        atomic.write_text(args.json, json.dumps(result, indent=1) + "\n")
    if args.show:
        false = measure.false_boxes(images, measure.IOUS[0])
        paths = {image.name: image.path for image in images}
        for path in contact_sheet.write(args.show, result["lost"], false, paths):
            print(f"contact sheet: {path}")
    return 0


def overrule_ids(args: argparse.Namespace, config: FacecropConfig) -> int:
    changed = overrule(args.data, args.ids, args.command, getattr(args, "reason", None), config.thresholds)
    for row in changed:
        print(
            f"{row['id']}: {row['decision']}"
            + (f" ({row['reason']})" if row["reason"] else "")
            + f" -> {row['path']}"
        )
    return 0


def dispatch(args: argparse.Namespace, log: logging.Logger) -> int:
    config = load(read_config(args.config))
    log.debug("settings: %s", config)
    if args.command == "rejects":
        return rejects(args, config)
    if args.command == "evaluate":
        return evaluate(args, config)
    if args.command in ("promote", "demote"):
        return overrule_ids(args, config)
    return crop(args, config, log)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.command = args.command or "run"
    log = configure_logging(args, "facecrop")
    # A listing and an evaluation write nothing in DATA, so they need no lock.
    read_only = (args.command == "rejects" and not args.html) or args.command == "evaluate"
    return run_stage(
        "facecrop",
        lambda: dispatch(args, log),
        interrupted="interrupted; finished images are saved, re-run to do the rest",
        data=None if read_only else args.data,
        wait=args.wait,
    )


if __name__ == "__main__":
    sys.exit(main())
