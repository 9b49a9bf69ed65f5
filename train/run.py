"""One training run, `python -m train`: config -> data -> models -> loop -> checkpoint, one named step per line.

Everything here happens once per run around `Trainer.fit`: the run's lock, its folder, resuming
from its last.pt, deciding the target and whether the end is scored, and the closing summary.
Every expected failure leaves as a `PipelineError` that `pipeline.runner` turns into one
`train: ...` line and its class's exit code (2 config, 4 no shard, 5 diverged, 7 locked,
130 interrupted), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch

from pipeline import atomic, lock
from pipeline.config import read_config
from pipeline.errors import Interrupted, Locked, PipelineError
from pipeline.layout import RunLayout
from pipeline.runner import show_progress
from pipeline.summary import print_summary
from train import checkpoint, distributed
from train import config as train_config
from train.config import TrainConfig
from train.distributed import Dist
from train.loop import FitResult, Trainer, target_for
from train.runtime import Runtime, make_runtime, pick_device
from train.shard import Shard, open_shard

log = logging.getLogger("train")
LOCK_POLL_S = 2.0  # under torchrun --wait: how often the ranks meet while rank 0 waits for the run's lock


def train_command(args: argparse.Namespace) -> int:
    """config -> data -> models -> loop -> checkpoint."""
    ctx = distributed.init_from_env(args.device)
    try:
        cfg = load_config(args)
        rt = make_runtime(cfg, choose_device(args.device, ctx))
        run_dir = args.runs_dir / args.run
        with hold_run(run_dir, ctx, args.wait):
            prepare_run_dir(run_dir, ctx)
            shard = open_data(args.data, cfg, ctx)
            trainer = build_trainer(cfg, shard, rt, ctx, run_dir, show_progress(args))
            target = target_for(cfg, trainer.batches.steps_per_epoch)  # 0: no end
            announce(trainer, target)
            if target and trainer.step >= target:
                return finished_already(trainer, args.fid)
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
    overrides = {}
    if args.max_steps is not None:
        overrides.update(max_steps=args.max_steps, epochs=0)
    if args.epochs is not None:
        overrides.update(epochs=args.epochs)
    table = read_config(args.config)
    table["train"] = {**table.get("train", {}), **overrides}
    return train_config.load(table)


def choose_device(option: str, ctx: Dist) -> torch.device:
    """Rank 0 warns about a missing GPU; the other ranks pick the same device quietly."""
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
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temps(run_dir)
    distributed.barrier(ctx)
    return run_dir


def open_data(data_dir: Path, cfg: TrainConfig, ctx: Dist) -> Shard:
    """Every shard problem is a `ShardError`, an `InputMissing` (4): rerunning the dataset stages fixes it."""
    return open_shard(data_dir, cfg.image_size, verify=ctx.main)


def build_trainer(
    cfg: TrainConfig, shard: Shard, rt: Runtime, ctx: Dist, run_dir: Path, progress: bool
) -> Trainer:
    """Models and optimizers, restored from the run's last.pt when there is one."""
    # A conditional run reads the shard's labels here (ShardError when they are missing).
    trainer = Trainer(cfg, shard, rt, ctx, run_dir, progress=progress)
    payload = checkpoint.load_last(run_dir)
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
    score = trainer.evaluator.fid(trainer.ema)
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
