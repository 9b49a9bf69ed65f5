"""`python -m train` (train a DCGAN on DATA/shards/faces64.npy) and `python -m train sample`.

`train_command` reads top to bottom: config -> data -> models -> loop -> checkpoint, one named
step per line. Every expected failure ends through `pipeline.runner` as one `train: ...` line
and the exit code its class carries (2 config, 4 no shard, 5 diverged, 130 interrupted), never
a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli import DEFAULT_CONFIG, add_stage_options
from pipeline.config import read_config
from pipeline.errors import Interrupted, Locked, PipelineError
from pipeline.layout import DEFAULT_RUNS_DIR, RunLayout
from pipeline.runner import configure_logging, run_stage, show_progress
from pipeline.summary import print_summary

if TYPE_CHECKING:
    import torch

    from train.config import TrainConfig
    from train.distributed import Dist
    from train.loop import FitResult, Trainer
    from train.runtime import Runtime
    from train.shard import Shard

log = logging.getLogger("train")
LOCK_POLL_S = 2.0  # under torchrun --wait: how often the ranks meet while rank 0 waits for the run's lock


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
    commands = parser.add_subparsers(dest="command", title="subcommands", metavar="{sample}")
    add_sample_parser(commands)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "sample":
        configure_logging(args, "train sample")
        return run_stage("train sample", lambda: sample_command(args))
    configure_logging(args, "train")
    return run_stage("train", lambda: train_command(args))


# ---------------------------------------------------------------- python -m train sample
def sample_command(args: argparse.Namespace) -> int:
    from train.runtime import pick_device
    from train.sample import make_samples

    count = make_samples(
        args.ckpt,
        args.n,
        args.out,
        args.truncation,
        args.label,
        args.interpolate,
        args.seed,
        pick_device(args.device),
        limit=sample_config(args.config).sample_max,
    )
    logging.getLogger("train sample").info("wrote %d images to %s", count, args.out)
    return 0


def sample_config(path: Path) -> TrainConfig:
    """The [train] table `sample` obeys. Sampling needs no config, so the default file may be absent
    (all defaults); a file named with --config must exist, as for every stage."""
    from train.config import TrainConfig, load_train_config

    if not path.is_file() and path == Path(DEFAULT_CONFIG):
        return TrainConfig()
    return load_train_config(read_config(path))


# ---------------------------------------------------------------- python -m train
def train_command(args: argparse.Namespace) -> int:
    """config -> data -> models -> loop -> checkpoint."""
    from train import distributed
    from train.loop import target_for
    from train.runtime import make_runtime

    ctx = distributed.init_from_env(args.device)
    try:
        cfg = load_config(args)
        rt = make_runtime(cfg, choose_device(args.device, ctx))
        run_dir = args.runs_dir / args.run
        with hold_run(run_dir, ctx, args.wait):
            prepare_run_dir(run_dir, ctx)
            shard = open_data(args.data, cfg, ctx)
            trainer = build_trainer(cfg, shard, rt, ctx, run_dir, show_progress(args))
            target = target_for(cfg, trainer.batches.steps_per_epoch)
            announce(trainer, target)
            if target and trainer.step >= target:
                return finished_already(trainer, args.fid)
            # 0: no end
            final_fid = bool(target) and wants_final_fid(args.fid, cfg, rt, target - trainer.step)
            result = trainer.fit(target, final_fid=final_fid)
    finally:
        distributed.shutdown(ctx)
    if ctx.main:
        report(result, run_dir)  # printed with -q too, as every stage's closing summary
    if result.interrupted:
        raise Interrupted(
            f"interrupted at step {result.step}; {RunLayout(run_dir).last} is saved, re-run the same "
            "command to continue"
        )
    return 0


def load_config(args: argparse.Namespace) -> TrainConfig:
    """The [train] section, with --max-steps / --epochs applied on top (through the same checks)."""
    from train.config import load_train_config

    overrides = {}
    if args.max_steps is not None:
        overrides.update(max_steps=args.max_steps, epochs=0)
    if args.epochs is not None:
        overrides.update(epochs=args.epochs)
    return load_train_config(read_config(args.config), overrides)


def choose_device(option: str, ctx: Dist) -> torch.device:
    """Rank 0 warns about a missing GPU; the other ranks pick the same device quietly."""
    import torch

    from train.runtime import pick_device

    if ctx.main:
        return pick_device(option, ctx.local_rank)
    if option != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank)
    return torch.device("cpu")


@contextmanager
def hold_run(run_dir: Path, ctx: Dist, wait: bool) -> Iterator[None]:
    """One trainer per run folder: an fcntl lock on RUNS_DIR/RUN/.lock (`pipeline.lock`, as DATA's).

    Two trainers on one --run would both append to metrics.jsonl and overwrite each other's last.pt.
    A second one exits with `Locked` (7) naming the holder's pid, or with --wait starts when it ends.
    Under torchrun only rank 0 holds the lock (fcntl locks belong to one process, so ranks holding
    it each would refuse each other) and tells the other ranks whether it got it; while it waits,
    the ranks meet every few seconds so no collective runs into its timeout.
    """
    from pipeline import lock
    from train import distributed

    if not ctx.enabled:
        with lock.hold_data(run_dir, wait=wait):
            yield
        return
    with ExitStack() as held:
        told = False
        while True:
            refusal, failure = None, None
            if ctx.main:
                try:
                    held.enter_context(lock.hold_data(run_dir))
                except Locked as exc:
                    refusal = str(exc)
                except OSError as exc:  # e.g. a read-only runs folder: every rank must hear of it, not hang
                    failure = f"cannot create the run's lock {exc.filename or run_dir}: {exc.strerror or exc}"
            refusal, failure = distributed.broadcast(ctx, (refusal, failure))
            if failure is not None:
                raise PipelineError(failure)
            if refusal is None:
                break
            if not wait:
                raise Locked(refusal)
            if ctx.main and not told:
                log.warning("%s; waiting for it to finish (--wait)", refusal.split(";")[0])
                told = True
            time.sleep(LOCK_POLL_S)
        yield


def prepare_run_dir(run_dir: Path, ctx: Dist) -> Path:
    """Create RUNS_DIR/RUN and delete temp files a killed save left behind (rank 0, then everyone waits)."""
    from train import distributed
    from train.loop import sweep_temps

    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        sweep_temps(run_dir)
    distributed.barrier(ctx)
    return run_dir


def open_data(data_dir: Path, cfg: TrainConfig, ctx: Dist) -> Shard:
    """Every shard problem is a `ShardError`, an `InputMissing` (4): rerunning the dataset stages fixes it."""
    from train.shard import open_shard

    return open_shard(data_dir, cfg.image_size, verify=ctx.main)


def build_trainer(
    cfg: TrainConfig, shard: Shard, rt: Runtime, ctx: Dist, run_dir: Path, progress: bool
) -> Trainer:
    """Models and optimizers, restored from the run's last.pt when there is one."""
    from train.loop import Trainer, load_resume

    # conditional: reads labels (ShardError)
    trainer = Trainer(cfg, shard, rt, ctx, run_dir, progress=progress)
    payload = load_resume(run_dir)
    if payload is not None:
        trainer.restore(payload)
    return trainer


def announce(trainer: Trainer, target: int) -> None:
    if not trainer.ctx.main:
        return
    resumed = f", resuming at step {trainer.step}" if trainer.step else ""
    log.info(
        "%s on %s x%d: %d faces, %d steps/epoch, target step %s%s",
        trainer.run_dir,
        trainer.rt.describe(),
        trainer.ctx.world,
        trainer.shard.count,
        trainer.batches.steps_per_epoch,
        target or "none (until Ctrl-C)",
        resumed,
    )
    if trainer.rt.cpu_bf16:
        log.info("%s", trainer.rt.cpu_bf16)


def finished_already(trainer: Trainer, fid: bool | None) -> int:
    """A run that reached its target does nothing, or with --fid scores its checkpoint."""
    if not trainer.ctx.main:
        return 0
    if not fid:
        log.info(
            "%s already reached step %d; nothing to do (raise --max-steps/--epochs to continue, or add --fid "
            "to score its last.pt)",
            trainer.run_dir,
            trainer.step,
        )
        return 0
    score = trainer.compute_fid()
    log.info(
        "FID of %s at step %d: %.2f (KID %.4f); %s",
        trainer.files.last,
        trainer.step,
        score.fid,
        score.kid,
        score.protocol,
    )
    return 0


def wants_final_fid(option: bool | None, cfg: TrainConfig, rt: Runtime, steps_this_run: int) -> bool:
    """On a CPU, a run shorter than fid_every skips the end-of-run FID unless --fid asks for it: its
    fid_samples x 2 InceptionV3 passes take minutes there, far longer than such a run trains."""
    if option is not None:
        return option
    if not cfg.fid_every:
        return False
    if rt.device.type == "cpu" and steps_this_run < cfg.fid_every:
        log.info(
            "skipping the final FID: this CPU run is %d steps, shorter than fid_every = %d, and %d + %d "
            "InceptionV3 passes take minutes on a CPU; add --fid to score it (on a finished run, --fid scores "
            "its last.pt)",
            steps_this_run,
            cfg.fid_every,
            cfg.fid_samples,
            cfg.fid_samples,
        )
        return False
    return True


def report(result: FitResult, run_dir: Path) -> None:
    """The closing summary: what the run reached and where its time went."""
    print_summary(
        f"train {run_dir}",
        {
            "steps this run": result.step - result.start_step,
            "step now": result.step,
            "images seen": result.images_seen,
            "img/s (incl. eval)": round(result.images_seen / max(result.seconds, 1e-9), 1),
            "interrupted (saved)": "yes" if result.interrupted else "no",
            "last FID": "-" if result.last_fid is None else round(result.last_fid, 2),
            "best FID (step)": "-"
            if result.best_fid is None
            else f"{result.best_fid:.2f} ({result.best_step})",
            "collapse alarms": result.collapse_alarms,
            "checkpoint": str(RunLayout(run_dir).last),
            "time (s)": {name: round(seconds, 1) for name, seconds in result.times.items()},
            "after the last step (s)": round(result.after_last_step, 1),
        },
    )


if __name__ == "__main__":
    sys.exit(main())
