"""`python -m train` (train a DCGAN on DATA/shards/faces64.npy) and `python -m train sample`.

Reads top to bottom: config -> data -> models -> loop -> checkpoint. Every expected failure
(bad config, missing or damaged shard, unusable checkpoint, diverged loss) ends as one
`train: error:` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import add_common_arguments
from pipeline.config import ConfigError, read_config
from pipeline.summary import print_summary


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a DCGAN on DATA/shards/faces64.npy. Re-running the same --run resumes from its last.pt. "
        "Use `python -m train sample --help` to turn a checkpoint into images.",
    )
    add_common_arguments(parser)
    parser.add_argument("--run", default="default", help="run name; files go to RUNS_DIR/RUN/ (default: default)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs live (default: runs)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--max-steps", type=int, help="stop when the run reaches this many steps in total")
    bound.add_argument("--epochs", type=int, help="stop after this many passes over the shard in total")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto (CUDA if present)")
    return parser


def sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train sample", description="Write a grid of images from a checkpoint's EMA generator.")
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint (runs/NAME/best.pt or last.pt)")
    parser.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    parser.add_argument("--out", type=Path, default=Path("grid.png"), help="output PNG (default: grid.png)")
    parser.add_argument("--truncation", type=float, metavar="PSI", help="truncated-normal latents in [-PSI, PSI]")
    parser.add_argument("--label", help="class to draw (conditional checkpoints), e.g. blue")
    parser.add_argument("--interpolate", type=int, default=0, metavar="STEPS",
                        help="rows of STEPS images walking (slerp) between two latents; n//STEPS rows")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    return parser


def sample_main(argv: list[str]) -> int:
    from train.checkpoint import CheckpointError
    from train.runtime import pick_device
    from train.sample import make_samples

    args = sample_parser().parse_args(argv)
    if args.n <= 0 or args.interpolate < 0:
        print("train sample: error: --n must be > 0 and --interpolate >= 0", file=sys.stderr)
        return 2
    try:
        count = make_samples(args.ckpt, args.n, args.out, args.truncation, args.label, args.interpolate, args.seed,
                             pick_device(args.device))
    except (CheckpointError, ValueError) as exc:
        print(f"train sample: error: {exc}", file=sys.stderr)
        return 2
    print(f"train sample: wrote {count} images to {args.out}", file=sys.stderr)
    return 0


def train_main(argv: list[str]) -> int:
    from train import distributed
    from train.checkpoint import CheckpointError
    from train.config import load_train_config
    from train.fid import FidError
    from train.loop import NonFiniteLoss, Trainer, load_resume, sweep_temps, target_for
    from train.runtime import make_runtime, pick_device
    from train.shard import ShardError, open_shard

    args = train_parser().parse_args(argv)
    ctx = distributed.init_from_env(args.device)
    try:
        # config
        overrides = {}
        if args.max_steps is not None:
            overrides.update(max_steps=args.max_steps, epochs=0)
        if args.epochs is not None:
            overrides.update(epochs=args.epochs)
        cfg = load_train_config(read_config(args.config), overrides)
        device = pick_device(args.device, ctx.local_rank) if ctx.main else _quiet_device(args.device, ctx.local_rank)
        rt = make_runtime(cfg, device)
        run_dir = args.runs_dir / args.run
        if ctx.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            sweep_temps(run_dir)
        distributed.barrier(ctx)
        # data
        shard = open_shard(args.data, cfg.image_size, verify=ctx.main)
        # models (+ resume)
        trainer = Trainer(cfg, shard, rt, ctx, run_dir)
        payload = load_resume(run_dir)
        if payload is not None:
            trainer.restore(payload)
        target = target_for(cfg, trainer.batches.steps_per_epoch)
        if ctx.main:
            resumed = f", resuming at step {trainer.step}" if payload is not None else ""
            print(f"train: {run_dir} on {rt.describe()} x{ctx.world}: {shard.count} faces, "
                  f"{trainer.batches.steps_per_epoch} steps/epoch, target step {target or 'none (until Ctrl-C)'}{resumed}",
                  file=sys.stderr)
        if target and trainer.step >= target:
            if ctx.main:
                print(f"train: {run_dir} already reached step {trainer.step}; nothing to do "
                      "(raise --max-steps/--epochs to continue)", file=sys.stderr)
            return 0
        # loop (checkpoints are written inside it)
        result = trainer.fit(target)
    except (ConfigError, ShardError, CheckpointError, FidError, NonFiniteLoss) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, NonFiniteLoss) else 2
    finally:
        distributed.shutdown(ctx)
    if ctx.main:
        print_summary(f"train {run_dir}", {
            "steps this run": result.step - result.start_step,
            "step now": result.step,
            "images seen": result.images_seen,
            "img/s (incl. eval)": round(result.images_seen / max(result.seconds, 1e-9), 1),
            "interrupted (saved)": "yes" if result.interrupted else "no",
            "last FID": "-" if result.last_fid is None else round(result.last_fid, 2),
            "best FID (step)": "-" if result.best_fid is None else f"{result.best_fid:.2f} ({result.best_step})",
            "collapse alarms": result.collapse_alarms,
            "checkpoint": str(run_dir / "last.pt"),
        })
    return 0


def _quiet_device(option: str, local_rank: int):
    """Non-zero ranks pick the same device without repeating rank 0's warning."""
    import torch

    if option != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:
        return sample_main(argv[1:])
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
