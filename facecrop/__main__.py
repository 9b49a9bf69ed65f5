"""`python -m facecrop [run|promote|demote|rejects] [--config F --data D --cascade PATH]`.

No subcommand means `run`. The common options are accepted before or after the
subcommand, because `make rejects` and people type them in both places.
"""

from __future__ import annotations

import argparse
import sys

from facecrop import listing, manifest, overrides, rejects_page
from facecrop.config import FacecropConfig, load_config
from facecrop.overrule import OverruleError, overrule
from facecrop.sources import SourcesError
from pipeline.cascade import CascadeError
from pipeline.cli import add_common_arguments
from pipeline.config import ConfigError
from pipeline.summary import print_summary

SUBCOMMANDS = ("run", "promote", "demote", "rejects")
VALUE_OPTIONS = ("--config", "--data", "--cascade", "--reason")


def _parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        "run": "Detect anime faces in DATA/raw/, write accepted crops and inspectable rejects.",
        "promote": "Accept crops the rules rejected; recorded in crops/overrides.jsonl and kept by every run.",
        "demote": "Reject crops the rules accepted, with your reason; recorded in crops/overrides.jsonl.",
        "rejects": "List rejects with counts per reason, or (--html) rebuild DATA/rejects/index.html.",
    }
    prog = "python -m facecrop" + ("" if command == "run" else f" {command}")
    epilog = None
    if command == "run":
        epilog = "subcommands: " + "; ".join(f"{name}: {descriptions[name].rstrip('.')}" for name in SUBCOMMANDS[1:])
        epilog += " See `python -m facecrop SUBCOMMAND --help`."
    parser = argparse.ArgumentParser(prog=prog, description=descriptions[command], epilog=epilog)
    add_common_arguments(parser)
    parser.add_argument("--cascade", help="lbpcascade_animeface.xml (default: $ANIMEFACE_CASCADE, DATA/models/, download)")
    if command in ("promote", "demote"):
        parser.add_argument("ids", nargs="+", metavar="ID", help="crop ids as in crops/manifest.jsonl")
    if command == "demote":
        parser.add_argument("--reason", default=overrides.DEFAULT_DEMOTE_REASON, help="why (a-z0-9_-; default: manual)")
    if command == "rejects":
        parser.add_argument("--reason", help="list only rejects with this reason")
        parser.add_argument("--html", action="store_true", help="(re)build DATA/rejects/index.html and print its path")
    if command == "run":
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    for i, token in enumerate(argv):
        if token in SUBCOMMANDS and (i == 0 or argv[i - 1] not in VALUE_OPTIONS):
            return token, argv[:i] + argv[i + 1 :]
    return "run", argv


def _run(args: argparse.Namespace, config: FacecropConfig) -> int:
    from facecrop.run import run
    from pipeline.cascade import load_cascade, resolve_cascade

    cascade_path = resolve_cascade(args.cascade, args.data)
    load_cascade(cascade_path)  # fail here, once, with a clear message, rather than in every worker
    result = run(config, args.data, cascade_path, progress=not args.no_progress)
    print_summary("facecrop", result.counts)
    print(f"rejects page: {result.page}", file=sys.stderr)
    if result.counts["faces"] == 0:
        print(
            "facecrop: no faces found in any image; see why with `make rejects` (or `python -m facecrop rejects`)",
            file=sys.stderr,
        )
    return 0


def _rejects(args: argparse.Namespace, config: FacecropConfig) -> int:
    rows = manifest.read_manifest(args.data)
    if not manifest.manifest_path(args.data).exists():
        print(f"facecrop: no crops manifest at {manifest.manifest_path(args.data)}; run `python -m facecrop` first", file=sys.stderr)
        return 1
    if args.html:
        page = rejects_page.build(args.data, rows, config.thresholds)
        data = rejects_page.page_data(args.data, rows, config.thresholds)
        print(page)
        print_summary("facecrop rejects", {"rejected": data["totals"]["rejected"], "by reason": data["counts"] or {"(none)": 0}}, sys.stdout)
        return 0
    print(listing.format_listing(rows, config.thresholds, args.reason))
    return 0


def main(argv: list[str] | None = None) -> int:
    command, rest = split_command(list(sys.argv[1:] if argv is None else argv))
    args = _parser(command).parse_args(rest)
    try:
        config = load_config(args.config)
        if command == "run":
            return _run(args, config)
        if command == "rejects":
            return _rejects(args, config)
        changed = overrule(args.data, args.ids, command, getattr(args, "reason", None), config.thresholds)
        for row in changed:
            print(f"{row['id']}: {row['decision']}" + (f" ({row['reason']})" if row["reason"] else "") + f" -> {row['path']}")
        return 0
    except (ConfigError, CascadeError, SourcesError, OverruleError, ValueError) as exc:
        print(f"facecrop: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError | ValueError) else 1
    except OSError as exc:
        print(f"facecrop: {exc}; finished images are saved, fix this and re-run", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facecrop: interrupted; finished images are saved, re-run to do the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
