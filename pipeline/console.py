"""`animefaces`: one command for every stage (`animefaces facecrop --data data`), `dataset`, and `--version`.

Each stage subcommand hands the rest of the command line to that stage's own `main(argv)`,
so `animefaces STAGE ...` and `python -m STAGE ...` accept the same flags, print the same
lines and end with the same exit code (`pipeline.errors`). `dataset` runs the dataset
stages in order, each in its own process as the Makefile always did, and stops at the first
one that fails, with that stage's code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Sequence

from pipeline import lock
from pipeline.cli import add_stage_options
from pipeline.errors import Interrupted, Locked, PipelineError

PROG = "animefaces"
DISTRIBUTION = "anime-face-pipeline"

# subcommand -> (module whose __main__.main runs it, argv prefix, help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "crawl": ("crawler", (), "fetch images from the configured sources into DATA/raw/"),
    "facecrop": ("facecrop", (), "detect faces, write crops and rejects (also: promote, demote, rejects)"),
    "dedup": ("dedup", (), "remove duplicate faces; write faces64/, the shard and the report"),
    "train": ("train", (), "train a DCGAN on DATA/shards/faces64.npy"),
    "sample": ("train", ("sample",), "write a grid of images from a checkpoint"),
    "score": (
        "train",
        ("score",),
        "rank the shard's faces by a trained discriminator (runs/NAME/scores.jsonl)",
    ),
    "summary": ("pipeline", ("summary",), "the one-screen summary of what the dataset stages wrote"),
    "review": (
        "review",
        (),
        "a local web app to inspect and overrule crops and duplicate clusters by clicking",
    ),
    "bench": ("bench", (), "every stage's benchmark against its baseline"),
}
DATASET_STAGES = ("crawler", "facecrop", "dedup")


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed; `pip install -e .`)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=f"`{PROG} COMMAND --help` shows that command's own flags.",
    )
    top.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, text) in COMMANDS.items():
        # No options of its own: everything after the name is the stage's, --help included.
        commands.add_parser(name, help=text, add_help=False)
    dataset = commands.add_parser(
        "dataset",
        help="crawl -> facecrop -> dedup -> summary, stopping at the first failure",
        description="crawl -> facecrop -> dedup -> summary, stopping at the first failure",
    )
    add_stage_options(dataset)
    return top


def stage_main(module: str, argv: list[str]) -> int:
    """Run `python -m module argv` in this process and return its exit code."""
    main = importlib.import_module(f"{module}.__main__").main
    try:
        return int(main(argv) or 0)
    except SystemExit as exc:  # argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def dataset(args: argparse.Namespace) -> int:
    common = ["--config", str(args.config), "--data", str(args.data)]
    output = [
        flag
        for flag, on in (("--no-progress", args.no_progress), ("-q", args.quiet), ("-v", args.verbose))
        if on
    ]
    steps = [[module, *common, *output] for module in DATASET_STAGES]
    steps.append(["pipeline", "summary", *common])
    try:
        # Held across the stages (which work under it), so a second run cannot slip in between two of them.
        with lock.hold_data(args.data, wait=args.wait, for_children=True):
            for step in steps:
                code = run_step([sys.executable, "-m", *step])
                if code != 0:
                    return code
    except Locked as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the lock file itself (a read-only DATA without one)
        print(
            f"{PROG}: cannot read or write {exc.filename or args.data}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return PipelineError.exit_code
    return 0


def run_step(command: list[str]) -> int:
    """One stage in its own process; on Ctrl-C (which the stage receives too) wait for it to save its work."""
    process = subprocess.Popen(command)
    interrupted = False
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
    return code or (Interrupted.exit_code if interrupted else 0)


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "dataset":
        if rest:
            parser().parse_args(["dataset", *rest])  # exits 2 naming the unknown flag
        return dataset(args)
    module, prefix, _ = COMMANDS[args.command]
    return stage_main(module, [*prefix, *rest])


if __name__ == "__main__":
    sys.exit(main())
