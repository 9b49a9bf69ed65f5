"""`python -m train` (train a DCGAN on DATA/shards/faces64.npy) and `python -m train sample`: flags only.

The commands themselves are `train.run.train_command` and `train.sample.sample_command`, imported
when dispatched, so `--help` and a mistyped flag answer without loading torch. Every expected
failure ends through `pipeline.runner` as one `train: ...` line and its class's exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import add_stage_options
from pipeline.layout import DEFAULT_RUNS_DIR
from pipeline.runner import configure_logging, run_stage


def build_parser() -> argparse.ArgumentParser:
    """Training options at the top level (so `python -m train --run NAME` and torchrun's `-m train -- …`
    keep working) and `sample` as a real subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m train",
        allow_abbrev=False,  # else `sample --n 8` is read as an abbreviation of the top level's --no-fid
        description="Train a DCGAN on DATA/shards/faces64.npy. Re-running the same --run resumes from its last.pt. "
        "Use `python -m train sample --help` to turn a checkpoint into images.",
    )
    add_stage_options(parser, wait=False)
    parser.add_argument(
        "--run", default="default", help="run name; files go to RUNS_DIR/RUN/ (default: default)"
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        help=f"where runs live (default: {DEFAULT_RUNS_DIR})",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another trainer is working on this --run, wait for it to finish (default: exit 7 "
        "at once, naming its pid)",
    )
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--max-steps", type=int, help="stop when the run reaches this many steps in total")
    bound.add_argument("--epochs", type=int, help="stop after this many passes over the shard in total")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto (CUDA if present)"
    )
    parser.add_argument(
        "--fid",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score FID at the end of the run (default: yes, except on a CPU for a run shorter than "
        "fid_every); on a run that already reached its target, --fid scores its last.pt",
    )
    commands = parser.add_subparsers(dest="command", title="subcommands", metavar="{sample,score}")
    add_sample_parser(commands)
    add_score_parser(commands)
    return parser


def add_sample_parser(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser(
        "sample",
        help="write a grid of images from a checkpoint's EMA generator",
        description="Write a grid of images from a checkpoint's EMA generator.",
    )
    # `-q sample` and `sample -q` both count, and so does --config (its [train] sample_max bounds --n).
    add_stage_options(sample, subcommand=True, wait=False)
    sample.add_argument(
        "--ckpt", type=Path, required=True, help="a checkpoint (runs/NAME/best.pt or last.pt)"
    )
    sample.add_argument(
        "--n",
        type=int,
        default=64,
        help="number of images (default: 64; at most [train] sample_max); with --interpolate, a multiple of its STEPS",
    )
    sample.add_argument("--out", type=Path, default=Path("grid.png"), help="output PNG (default: grid.png)")
    sample.add_argument(
        "--truncation", type=float, metavar="PSI", help="truncated-normal latents in [-PSI, PSI]"
    )
    sample.add_argument("--label", help="class to draw (conditional checkpoints), e.g. blue")
    sample.add_argument(
        "--interpolate",
        type=int,
        default=0,
        metavar="STEPS",
        help="write --n / STEPS rows, each a walk (slerp) of STEPS images (>= 2) between two latents",
    )
    sample.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    sample.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")


def add_score_parser(commands: argparse._SubParsersAction) -> None:
    text = (
        "Score every face of DATA's shard with a checkpoint's discriminator; writes scores.jsonl beside "
        "the checkpoint (the review app lists the lowest first: mostly bad crops)."
    )
    score = commands.add_parser(
        "score", help="rank the shard's faces by a trained discriminator", description=text
    )
    add_stage_options(score, subcommand=True, wait=False)
    score.add_argument("--ckpt", type=Path, required=True, help="a checkpoint (runs/NAME/best.pt or last.pt)")
    score.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "sample":
        from train.sample import sample_command

        configure_logging(args, "train sample")
        return run_stage("train sample", lambda: sample_command(args))
    if args.command == "score":
        from train.score import score_command

        configure_logging(args, "train score")
        return run_stage("train score", lambda: score_command(args))
    from train.run import train_command

    configure_logging(args, "train")
    return run_stage("train", lambda: train_command(args))


if __name__ == "__main__":
    sys.exit(main())
