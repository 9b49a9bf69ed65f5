"""The training loop: `Trainer` builds data, models and optimizers, and `fit` runs the schedule.

`fit` reads top to bottom, as nanoGPT's train.py does: a step, then whatever is due after it (a
metrics row with its checks, a sample grid, a checkpoint), each schedule spelled out in the loop.
What a step backpropagates lives in `train.losses`, what a check scores in `train.evaluate`, what
a checkpoint holds in `train.checkpoint`. Per-step values stay on the device and are read once per
metrics row, because a `.item()` per step stalls a GPU pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pipeline.errors import Diverged
from pipeline.layout import RunLayout
from train import checkpoint, distributed, images, losses
from train.batches import DeviceBatches, label_prior
from train.config import TrainConfig
from train.evaluate import Evaluator, ema_images
from train.metrics_log import MetricsLog, PhaseClock, Window
from train.models import build_models, ema_update, wrap_for_step
from train.runtime import Runtime, switch_on
from train.shard import Shard
from train.stopping import signals_caught, stop_agreed

LAST, BEST = RunLayout(Path()).last.name, RunLayout(Path()).best.name  # the checkpoint file names
N_FIXED = 64  # images in a sample grid


class NonFiniteLoss(Diverged):
    """Training diverged; the message names the first bad step and the last good checkpoint."""


@dataclasses.dataclass
class FitResult:
    start_step: int
    step: int
    interrupted: bool
    best_fid: float | None
    best_step: int | None
    last_fid: float | None
    collapse_alarms: int
    images_seen: int
    seconds: float
    times: dict[str, float]  # wall seconds per kind of work (training, FID, sampling, checkpoints, ...)
    after_last_step: float  # seconds from the last training step to the end of fit


class Trainer:
    """Owns models, optimizers, the run's RNG and its directory; `fit` is the loop."""

    def __init__(
        self,
        cfg: TrainConfig,
        shard: Shard,
        rt: Runtime,
        ctx: distributed.Dist,
        run_dir: Path,
        progress: bool = True,
    ):
        self.cfg, self.shard, self.rt, self.ctx, self.run_dir = cfg, shard, rt, ctx, run_dir
        self.files = RunLayout(run_dir)
        self.progress = progress and ctx.main
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self._build_data()
        self._build_models()
        fused = switch_on(cfg.fused_adam, rt.device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g_core.parameters(), lr=cfg.lr_g, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.d_core.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.use_scaler)
        self.loss = losses.GanLoss(
            g=self.g_fwd,
            d=self.d_fwd,
            d_for_g=self.d_gstep,
            d_module=self.d_core,
            adversarial=losses.get(cfg.loss),
            aux_weight=cfg.aux_weight,
            policies=cfg.policies(),
            gen=self.gen,
            autocast=rt.autocast,
            scaler=self.scaler,
        )
        self.evaluator = Evaluator(cfg, shard, self.files, self.label_prior, rt.device, self.progress)
        states = [self.g_core, self.d_core, self.ema, self.opt_g, self.opt_d, self.scaler]
        self.parts = checkpoint.RunParts(
            cfg,
            self.vocab,
            shard.sha256,
            self.batches.steps_per_epoch,
            ctx,
            self.gen,
            dict(zip(checkpoint.PARTS, states, strict=True)),
        )
        self.step = self.saved_step = 0
        self.clock = PhaseClock()

    def _build_data(self) -> None:
        """This rank's slice of the shard on the device, the label prior, the run's generator, fixed noise."""
        cfg, ctx, device = self.cfg, self.ctx, self.rt.device
        labels, self.vocab = self.shard.labels(cfg.label) if cfg.conditional else (None, [])
        self.n_classes = len(self.vocab)
        self.batches = DeviceBatches(
            self.shard.images,
            labels,
            cfg.batch_size,
            device,
            cfg.seed,
            ctx.rank,
            ctx.world,
            cfg.flip,
            self.rt.memory_format,
        )
        self.label_prior = label_prior(labels, self.n_classes, device)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + ctx.rank)
        # fixed noise for sample grids, from its own generator: grids never shift the training RNG
        fixed = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(N_FIXED, cfg.nz, generator=fixed).to(device)
        self.fixed_labels = (
            (torch.arange(N_FIXED, device=device) // 8 % self.n_classes) if self.n_classes else None
        )

    def _build_models(self) -> None:
        """G, D and EMA-G, then the wrappers the step calls them through (DDP, torch.compile)."""
        cfg, rt = self.cfg, self.rt
        self.g_core, self.d_core = build_models(cfg.nz, cfg.ngf, cfg.ndf, cfg.image_size, self.n_classes)
        self.g_core.to(rt.device, memory_format=rt.memory_format)
        self.d_core.to(rt.device, memory_format=rt.memory_format)
        self.ema = AveragedModel(self.g_core, use_buffers=True)  # updated by ema_update
        self.g_fwd, self.d_fwd, self.d_gstep, self.graphs = wrap_for_step(
            self.g_core, self.d_core, self.ctx.enabled, rt.device, cfg.compile_mode if cfg.compile else None
        )

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint `checkpoint.load` verified."""
        kept = checkpoint.restore(self.files.last, payload, self.parts)
        self.step = self.saved_step = kept.step
        ev = self.evaluator
        ev.best_fid, ev.best_step, ev.collapse_best = kept.best_fid, kept.best_step, kept.collapse_best

    def save(self, name: str = LAST) -> None:
        ev = self.evaluator
        with self.clock.phase("checkpoints"):
            kept = checkpoint.Bookkeeping(self.step, ev.best_fid, ev.best_step, ev.collapse_best)
            payload = checkpoint.build_payload(self.parts, kept)  # every rank joins its gather
            previous = self.saved_step if name == LAST else None
            checkpoint.save_from_rank0(self.ctx, self.files.checkpoint(name), payload, previous)
        if name == LAST:
            self.saved_step = self.step

    def train_step(self) -> dict[str, torch.Tensor]:
        """One D update, then one G update, on one batch (the DCGAN example's order); the EMA follows G.

        The batch, noise and fake labels are drawn in this order from the run's generator, and the
        phases' augmentations after them: exact resume replays exactly this sequence.
        """
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        real, real_labels = self.batches.batch(self.step, self.gen)
        z = torch.randn(real.shape[0], self.cfg.nz, generator=self.gen, device=self.rt.device)
        fake_labels = None
        if self.label_prior is not None:
            fake_labels = torch.multinomial(
                self.label_prior, real.shape[0], replacement=True, generator=self.gen
            )
        batch = losses.StepBatch(real, real_labels, z, fake_labels)
        values: dict[str, torch.Tensor] = {}
        for phase, opt in (("D", self.opt_d), ("G", self.opt_g)):
            opt.zero_grad(set_to_none=True)
            values.update(self.loss.accumulate(phase, batch))
            self.scaler.step(opt)
        self.scaler.update()
        ema_update(self.ema, self.g_core, self.cfg.ema_decay)
        self.step += 1
        return {key: values[key] for key in ("loss_d", "loss_g", "d_x", "d_g_z")}  # the metrics rows' order

    def fit(self, target_step: int, final_fid: bool = True) -> FitResult:
        """Train to `target_step` (0: until a signal); `final_fid` scores the last step even off `fid_every`."""
        cfg, ctx, start_step = self.cfg, self.ctx, self.step
        self.clock = PhaseClock()
        self.evaluator.last_fid, self.evaluator.alarms = None, 0
        window = Window(self.step, self.rt.device)
        stopping, last_step_done = False, time.perf_counter()
        with (
            signals_caught(ctx.main) as stop,
            self._metrics_log() as metrics,
            self._progress_bar(target_step) as bar,
        ):
            while (target_step == 0 or self.step < target_step) and not stopping:
                window.add(self.train_step())
                last_step_done = time.perf_counter()
                bar.update(1)
                step = self.step
                at_end = step == target_step
                at_row = step % cfg.log_every == 0 or at_end
                stopping = stop_agreed(ctx, stop, at_row, self.rt.device)
                if at_row or stopping:
                    self._metrics_row(window, metrics, bar, score_fid=final_fid and at_end)
                if ctx.main and cfg.sample_every and (step % cfg.sample_every == 0 or at_end or stopping):
                    with self.clock.phase("sampling"):
                        images.save_grid(
                            ema_images(self.ema, self.fixed_z, self.fixed_labels),
                            self.files.sample_grid(step),
                        )
                due = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or at_end or stopping
                if due and self.saved_step != step:
                    self._raise_if_bad(window)
                    self.save(LAST)
        ev = self.evaluator
        return FitResult(
            start_step=start_step,
            step=self.step,
            interrupted=stopping,
            best_fid=ev.best_fid,
            best_step=ev.best_step,
            last_fid=ev.last_fid,
            collapse_alarms=ev.alarms,
            images_seen=(self.step - start_step) * cfg.batch_size * ctx.world,
            seconds=self.clock.elapsed(),
            times=self.clock.breakdown(),
            after_last_step=time.perf_counter() - last_step_done,
        )

    def _metrics_row(self, window: Window, metrics: MetricsLog | None, bar: tqdm, score_fid: bool) -> None:
        """The window's means (one host sync) and the checks due now; a new best FID also writes best.pt."""
        self._raise_if_bad(window)
        step = self.step
        row: dict[str, Any] = {"step": step, "epoch": step // self.batches.steps_per_epoch}
        row.update(window.means(self.cfg.batch_size * self.ctx.world))
        if self.ctx.main:
            row.update(self.evaluator.due(self.ema, step, score_fid, self.clock))
            assert metrics is not None
            metrics.log(row)
            last_fid = self.evaluator.last_fid
            shown = {"img/s": row["img_per_s"], "D": row["loss_d"], "G": row["loss_g"]}
            bar.set_postfix({**shown, **({"FID": round(last_fid, 1)} if last_fid is not None else {})})
        if bool(distributed.broadcast(self.ctx, self.evaluator.best_step == step)):
            self.save(BEST)
            self.save(LAST)
        window.restart()  # img/s measures training, not evaluation

    def _raise_if_bad(self, window: Window) -> None:
        bad_step = window.first_bad_step()
        if bad_step is not None:
            last = self.files.last
            where = (
                f"the last good checkpoint is {last} (step {self.saved_step})"
                if last.exists()
                else "no checkpoint was saved"
            )
            raise NonFiniteLoss(
                f"non-finite loss at step {bad_step}; training stopped and nothing after it was saved; {where}. "
                "Lower [train] lr_g/lr_d (or turn autocast off) and re-run to resume from it"
            )

    @contextlib.contextmanager
    def _metrics_log(self) -> Iterator[MetricsLog | None]:
        """metrics.jsonl (rank 0), opened trimmed to this step; the real grid first, the loss curve last."""
        if not self.ctx.main:
            yield None
            return
        metrics = MetricsLog(self.run_dir, self.step, self.cfg.tensorboard)
        if not self.files.real_grid.exists():
            with self.clock.phase("sampling"):
                images.save_real_grid(self.shard.images, N_FIXED, self.cfg.seed, self.files.real_grid)
        try:
            yield metrics
        except BaseException:
            # The run is failing already (a full disk, a bad step): the curve is a nicety, and its own
            # write error must not replace the line that says what went wrong.
            with contextlib.suppress(OSError), self.clock.phase("sampling"):
                images.save_loss_curve(metrics.rows(), self.files.loss_curve)
            raise
        else:
            with self.clock.phase("sampling"):
                images.save_loss_curve(metrics.rows(), self.files.loss_curve)
        finally:
            metrics.close()

    def _progress_bar(self, target_step: int) -> tqdm:
        return tqdm(
            total=target_step or None,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            desc=f"train {self.run_dir.name}",
            dynamic_ncols=True,
            file=sys.stderr,
        )


def target_for(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Total steps this run should reach; 0 means until interrupted."""
    if cfg.epochs:
        return cfg.epochs * steps_per_epoch
    return cfg.max_steps
