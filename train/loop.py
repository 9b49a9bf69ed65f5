"""The training loop: one `Trainer` that owns models, optimizers, RNG and the run directory.

Reads top to bottom as the design asks: build (data -> models -> optimizers), maybe resume,
then `fit` runs steps and, on their schedules, logs, samples, checkpoints, scores FID and
checks for mode collapse. Per-step values stay on the device and are read once per logging
interval, because a `.item()` per step stalls a GPU pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pipeline import atomic
from pipeline.errors import ConfigError, Diverged
from pipeline.layout import RunLayout
from train import checkpoint, distributed, images, losses
from train.augment import diff_augment
from train.batches import DeviceBatches
from train.config import TrainConfig
from train.metrics_log import MetricsLog, warn
from train.models import build_models
from train.runtime import Runtime, switch_on
from train.shard import Shard

LAST, BEST = RunLayout(Path()).last.name, RunLayout(Path()).best.name  # the checkpoint file names
N_FIXED = 64
log = logging.getLogger("train")


@torch.no_grad()
def ema_update(ema: AveragedModel, model: torch.nn.Module, decay: float) -> None:
    """`AveragedModel.update_parameters` (parameters and buffers) with a warm-up decay min(decay, (1+n)/(10+n)).

    With a fixed 0.999 the average is still ~80% initial weights after 250 steps, so early sample
    grids and FIDs show a grey untrained generator; the ramp (as in Tensorflow's
    ExponentialMovingAverage with num_updates) lets the EMA follow G closely early on.

    Written out rather than passed to AveragedModel as `multi_avg_fn`, because torch's
    update copies its CPU step counter to the device on every call, a blocking copy on CUDA.
    Here the counter stays on the CPU and the weight is a Python float: no host sync.
    """
    n = int(ema.n_averaged)  # a CPU buffer: reading it does not wait for the GPU
    pairs = list(
        zip(
            itertools.chain(ema.module.parameters(), ema.module.buffers()),
            itertools.chain(model.parameters(), model.buffers()),
            strict=True,
        )
    )
    if n == 0:
        for e, c in pairs:
            e.detach().copy_(c.detach())
    else:
        weight = 1.0 - min(decay, (1 + n) / (10 + n))
        floats = [(e.detach(), c.detach()) for e, c in pairs if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [c for _, c in floats], weight)
        for e, c in pairs:
            if not e.is_floating_point():
                e.detach().copy_(c.detach())
    ema.n_averaged += 1


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


class PhaseClock:
    """Wall time per kind of work, so the end-of-run summary can say where a run's time went.

    Training is what is left after the timed phases, because on a GPU the steps run asynchronously
    and only the phases that read results back (FID, grids, checkpoints) end in a sync anyway.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def breakdown(self) -> dict[str, float]:
        return {"training": max(0.0, self.elapsed() - sum(self.seconds.values())), **self.seconds}


class Window:
    """The steps between two metrics rows: per-step values summed on the device and read once per row.

    A `.item()` per step would stall a GPU pipeline, so the first non-finite step is also recorded on
    the device (against a device-side step counter, not a host-made tensor, which would sync too) and
    checked before anything is logged or saved.
    """

    def __init__(self, step: int, device: torch.device):
        self.device_step = torch.tensor(step, device=device)
        self.bad_step = torch.tensor(-1, device=device)
        self.restart()

    def restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor]) -> None:
        self.device_step += 1
        finite = torch.isfinite(values["loss_d"] + values["loss_g"])
        self.bad_step = torch.where((self.bad_step < 0) & ~finite, self.device_step, self.bad_step)
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1

    def first_bad_step(self) -> int | None:
        bad = int(self.bad_step.item())
        return bad if bad >= 0 else None

    def means(self, images_per_step: int) -> dict[str, float]:
        """Mean of each value over the window and training img/s (evaluation time excluded)."""
        n = max(1, self.steps)
        row = {key: round(float(value.item()) / n, 6) for key, value in self.sums.items()}
        row["img_per_s"] = round(
            self.steps * images_per_step / max(time.perf_counter() - self.started, 1e-9), 2
        )
        return row


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
        self._build_optimizers()
        self.loss = losses.get(cfg.loss)
        # fixed noise for sample grids, independent of the training RNG
        fixed = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(N_FIXED, cfg.nz, generator=fixed).to(rt.device)
        self.fixed_labels = (
            (torch.arange(N_FIXED, device=rt.device) // 8 % self.n_classes) if self.n_classes else None
        )

        self.step = 0
        self.saved_step = 0
        self.best_fid: float | None = None
        self.best_step: int | None = None
        self.collapse_best = (
            0.0  # best distinct-pHash share so far (the alarm's reference, kept in checkpoints)
        )
        self.alarms = 0  # collapse alarms in this fit
        self.last_fid: float | None = None
        self.fid_meter = None
        self.clock = PhaseClock()
        self._signalled = False  # set by SIGINT/SIGTERM on this rank
        self._stopping = False  # every rank agreed to stop after this step

    def _build_data(self) -> None:
        """This rank's slice of the shard on the device, its labels and the label prior for fake labels."""
        cfg, device = self.cfg, self.rt.device
        labels, self.vocab = self.shard.labels(cfg.label) if cfg.conditional else (None, [])
        self.n_classes = len(self.vocab)
        self.batches = DeviceBatches(
            self.shard.images,
            labels,
            cfg.batch_size,
            device,
            cfg.seed,
            self.ctx.rank,
            self.ctx.world,
            cfg.flip,
            self.rt.memory_format,
        )
        if labels is not None:
            counts = np.bincount(labels[labels >= 0], minlength=self.n_classes).astype(np.float64)
            self.label_prior = torch.tensor(counts / counts.sum(), dtype=torch.float32, device=device)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + self.ctx.rank)

    def _build_models(self) -> None:
        """G, D and EMA-G, then the wrappers the step calls through (DDP, torch.compile)."""
        cfg, device = self.cfg, self.rt.device
        self.g_core, self.d_core = build_models(cfg.nz, cfg.ngf, cfg.ndf, cfg.image_size, self.n_classes)
        self.g_core.to(device, memory_format=self.rt.memory_format)
        self.d_core.to(device, memory_format=self.rt.memory_format)
        self.ema = AveragedModel(self.g_core, use_buffers=True)  # updated by ema_update
        self.g_fwd: Any = self.g_core
        self.d_fwd: Any = self.d_core
        if self.ctx.enabled:
            # BatchNorm buffers stay per rank: broadcasting them while D runs twice per step
            # (real, then fake) is the known DDP-GAN in-place error, and D never uses them.
            ids = [device.index] if device.type == "cuda" else None
            self.g_fwd = DDP(self.g_core, device_ids=ids, broadcast_buffers=False)
            self.d_fwd = DDP(self.d_core, device_ids=ids, broadcast_buffers=False)
        self.d_gstep: Any = self.d_core  # G's step needs no D gradient sync
        if cfg.compile:
            mode = cfg.compile_mode
            self.g_fwd = torch.compile(self.g_fwd, mode=mode)
            self.d_fwd = torch.compile(self.d_fwd, mode=mode)
            self.d_gstep = self.d_fwd if not self.ctx.enabled else torch.compile(self.d_core, mode=mode)
        # CUDA graphs replay into the same memory: each step must tell them where a new iteration begins
        self.graphs = cfg.compile and cfg.compile_mode != "default" and self.rt.device.type == "cuda"

    def _build_optimizers(self) -> None:
        cfg, device = self.cfg, self.rt.device
        fused = switch_on(cfg.fused_adam, device)
        self.opt_g = torch.optim.Adam(
            self.g_core.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), fused=fused
        )
        self.opt_d = torch.optim.Adam(
            self.d_core.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), fused=fused
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.rt.use_scaler)

    # ---------------------------------------------------------------- checkpoints
    def payload(self) -> dict[str, Any]:
        gens = distributed.gather(self.ctx, self.gen.get_state().cpu())
        return {
            "step": self.step,
            "epoch": self.step // self.batches.steps_per_epoch,
            "config": dataclasses.asdict(self.cfg),
            "model": self.cfg.model_shape(),
            "label_vocab": self.vocab,
            "shard_sha256": self.shard.sha256,
            "world": self.ctx.world,
            "G": self.g_core.state_dict(),
            "D": self.d_core.state_dict(),
            "G_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "train_gen": gens,
            "best_fid": self.best_fid,
            "best_step": self.best_step,
            "collapse_best": self.collapse_best,
        }

    def save(self, name: str = LAST) -> None:
        """Rank 0 writes; every rank then learns whether it worked, so a failed write (full disk) ends
        every rank with the same line instead of leaving the others waiting in a barrier forever."""
        with self.clock.phase("checkpoints"):
            payload = self.payload()  # every rank joins the gather
            failure: str | None = None
            if self.ctx.main:
                try:
                    checkpoint.save(
                        self.files.checkpoint(name),
                        payload,
                        previous_step=self.saved_step if name == LAST else None,
                    )
                except checkpoint.CheckpointWriteError as exc:
                    failure = str(exc)
            failure = distributed.broadcast(self.ctx, failure)
            if failure is not None:
                raise checkpoint.CheckpointWriteError(failure)
        if name == LAST:
            self.saved_step = self.step

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a checkpoint `checkpoint.load` verified; weights that do not fit are one line."""
        path = self.files.last
        stored, now = payload["model"], self.cfg.model_shape()
        if stored != now:
            if not isinstance(stored, dict):
                raise checkpoint.CheckpointError(
                    f"{path} describes no model ({stored!r}); move it aside and re-run"
                )
            differ = [key for key in now if stored.get(key) != now[key]]
            raise ConfigError(
                f"{path} was trained with {', '.join(f'{k} = {stored.get(k)!r}' for k in differ)}, but the config "
                f"now says {', '.join(f'{k} = {now[k]!r}' for k in differ)}; restore those [train] keys or pick "
                "another --run"
            )
        if payload["shard_sha256"] != self.shard.sha256 and self.ctx.main:
            warn("the shard changed since this run's last checkpoint; training continues on the new shard")
        for part, target in (
            ("G", self.g_core),
            ("D", self.d_core),
            ("G_ema", self.ema),
            ("opt_g", self.opt_g),
            ("opt_d", self.opt_d),
            ("scaler", self.scaler),
        ):
            checkpoint.load_state(path, part, target, payload[part])
        for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:  # a lowered LR in the config applies on resume
                group["lr"] = lr
                group["betas"] = (self.cfg.beta1, self.cfg.beta2)
        try:
            checkpoint.set_rng_state(payload["rng"])
            if payload["world"] == self.ctx.world:
                self.gen.set_state(payload["train_gen"][self.ctx.rank].to(self.gen.get_state().device))
            elif self.ctx.main:
                warn(
                    f"resuming a {payload['world']}-process run on {self.ctx.world}: per-rank RNG streams are "
                    "re-seeded"
                )
            self.step = self.saved_step = int(payload["step"])
            self.best_fid, self.best_step = payload["best_fid"], payload["best_step"]
            self.collapse_best = float(payload["collapse_best"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise checkpoint.CheckpointError(
                f"{path}: its RNG or bookkeeping state does not fit this trainer ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); move it aside and re-run to start afresh"
            ) from exc

    # ---------------------------------------------------------------- one step
    def _fake_labels(self, n: int) -> torch.Tensor | None:
        if not self.n_classes:
            return None
        return torch.multinomial(self.label_prior, n, replacement=True, generator=self.gen)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.policies(), self.gen) if self.cfg.diffaugment else x

    def _aux(self, logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        """AC-GAN class loss over the labelled rows; 0 when a batch has none (computed without a host sync)."""
        if logits is None or labels is None:
            return torch.zeros((), device=self.rt.device)
        total = F.cross_entropy(logits.float(), labels, ignore_index=-1, reduction="sum")
        return self.cfg.aux_weight * total / (labels >= 0).sum().clamp(min=1)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One D update (real, then fake, as in the DCGAN example) and one G update."""
        cfg, rt = self.cfg, self.rt
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        real, real_labels = self.batches.batch(self.step, self.gen)
        b = real.shape[0]
        z = torch.randn(b, cfg.nz, generator=self.gen, device=rt.device)
        fake_labels = self._fake_labels(b)

        self.opt_d.zero_grad(set_to_none=True)
        with rt.autocast():
            out_real, aux_real = self.d_fwd(self._aug(real))
            out_real = out_real.float()
            loss_real = self.loss(out_real, "real") + self._aux(aux_real, real_labels)
        d_x = torch.sigmoid(
            out_real.detach()
        ).mean()  # read now: a later D call may reuse a graph's output memory
        self.scaler.scale(loss_real).backward()
        with rt.autocast():
            fake = self.g_fwd(z, fake_labels)
            out_fake, aux_fake = self.d_fwd(self._aug(fake.detach()))
            out_fake = out_fake.float()
            loss_fake = self.loss(out_fake, "fake") + self._aux(aux_fake, fake_labels)
        d_g_z = torch.sigmoid(out_fake.detach()).mean()
        loss_d = (loss_real + loss_fake).detach()
        self.scaler.scale(loss_fake).backward()
        self.scaler.step(self.opt_d)

        self.opt_g.zero_grad(set_to_none=True)
        self.d_core.requires_grad_(False)
        with rt.autocast():
            out_g, aux_g = self.d_gstep(self._aug(fake))
            out_g = out_g.float()
            loss_g = self.loss(out_g, "generator") + self._aux(aux_g, fake_labels)
        self.scaler.scale(loss_g).backward()
        self.d_core.requires_grad_(True)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        ema_update(self.ema, self.g_core, cfg.ema_decay)
        self.step += 1
        return {"loss_d": loss_d, "loss_g": loss_g.detach(), "d_x": d_x, "d_g_z": d_g_z}

    # ---------------------------------------------------------------- sampling from EMA-G
    @torch.no_grad()
    def ema_images(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        g = self.ema.module
        g.eval()
        out = g(z, labels)
        g.train()
        return out

    def _random_latents(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Evaluation latents from their own generator, so evaluation never shifts the training RNG."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.nz, generator=gen).to(self.rt.device)
        labels = None
        if self.n_classes:
            labels = torch.multinomial(self.label_prior.cpu(), n, replacement=True, generator=gen).to(
                self.rt.device
            )
        return z, labels

    def write_samples(self) -> None:
        with self.clock.phase("sampling"):
            images.save_grid(
                self.ema_images(self.fixed_z, self.fixed_labels),
                self.files.sample_grid(self.step),
            )

    def write_real_grid(self) -> None:
        path = self.files.real_grid
        if not path.exists():
            with self.clock.phase("sampling"):
                gen = torch.Generator().manual_seed(self.cfg.seed)
                idx = torch.randperm(self.shard.count, generator=gen)[:N_FIXED].sort().values.numpy()
                rows = torch.from_numpy(np.array(self.shard.images[idx])).permute(0, 3, 1, 2)
                images.save_grid(rows, path)

    def check_collapse(self) -> tuple[float, bool]:
        """Share of distinct pHashes among EMA samples, and whether it fell sharply from the best seen.

        `train.collapse` (and with it ImageHash) is imported here, on first use, so a machine without
        ImageHash (the bare GPU image `make bench-gpu` runs on) trains with collapse_every = 0.
        """
        from train import collapse

        with self.clock.phase("collapse checks"):
            z, labels = self._random_latents(self.cfg.collapse_samples, 777_000 + self.step)
            out = []
            for start in range(0, z.shape[0], 128):
                sl = slice(start, start + 128)
                lab = None if labels is None else labels[sl]
                out.append(images.to_uint8(self.ema_images(z[sl], lab)).permute(0, 2, 3, 1).cpu().numpy())
            share = collapse.distinct_share(np.concatenate(out))
        alarm = collapse.CollapseAlarm(self.cfg.collapse_drop, self.collapse_best)
        fired = alarm.check(share)
        self.collapse_best = alarm.best
        return share, fired

    def compute_fid(self):
        from train.fid import FidMeter

        with self.clock.phase("FID"):
            if self.fid_meter is None:
                self.fid_meter = FidMeter(self.rt.device, self.cfg.fid_batch, progress=self.progress)
                self.fid_meter.set_reference(
                    self.shard.images, self.cfg.fid_samples, self.shard.sha256, self.files.fid_reference
                )
            n = self.cfg.fid_samples
            # the same latents every time: less noise between checks
            z, labels = self._random_latents(n, 999_000)

            def fake(start: int, count: int) -> torch.Tensor:
                lab = None if labels is None else labels[start : start + count]
                return images.to_uint8(self.ema_images(z[start : start + count], lab)).float()

            return self.fid_meter.score(self.fid_meter.features(fake, n, "FID samples"))

    # ---------------------------------------------------------------- the loop
    def fit(self, target_step: int, final_fid: bool = True) -> FitResult:
        """Train to `target_step` (0: until a signal); log, evaluate, sample and checkpoint on their schedules.

        `final_fid` scores the last step even when it is not a `fid_every` multiple.
        """
        start_step = self.step
        self.clock = PhaseClock()
        self.alarms, self.last_fid = 0, None
        window = Window(self.step, self.rt.device)
        last_step_done = time.perf_counter()
        with self._signals_caught(), self._metrics_log() as metrics, self._progress_bar(target_step) as bar:
            while (target_step == 0 or self.step < target_step) and not self._stopping:
                window.add(self.train_step())
                last_step_done = time.perf_counter()
                bar.update(1)
                self._end_of_step(window, metrics, bar, target_step, final_fid)
        return FitResult(
            start_step,
            self.step,
            self._stopping,
            self.best_fid,
            self.best_step,
            self.last_fid,
            self.alarms,
            (self.step - start_step) * self.cfg.batch_size * self.ctx.world,
            self.clock.elapsed(),
            self.clock.breakdown(),
            time.perf_counter() - last_step_done,
        )

    def _end_of_step(
        self, window: Window, metrics: MetricsLog | None, bar: tqdm, target_step: int, final_fid: bool
    ) -> None:
        """What follows a step on its schedule: a metrics row (with evaluation), a grid, a checkpoint."""
        cfg, step = self.cfg, self.step
        at_end = step == target_step
        at_row = step % cfg.log_every == 0 or at_end
        self._stopping = self._agree_to_stop(at_row)
        if at_row or self._stopping:
            self._close_window(window, metrics, bar, score_fid=final_fid and at_end)
        if self.ctx.main and cfg.sample_every and (step % cfg.sample_every == 0 or at_end or self._stopping):
            self.write_samples()
        due = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or at_end or self._stopping
        if due and self.saved_step != step:
            self._raise_if_bad(window)
            self.save(LAST)

    def _agree_to_stop(self, at_row: bool) -> bool:
        """Stop after this step when a signal arrived. Under DDP every rank must stop at the same step, and
        agreeing is a collective with a host sync, so ranks agree only at metrics rows (every log_every steps);
        a single process needs no agreement and stops at the very next step."""
        if not self.ctx.enabled:
            return self._signalled
        if not at_row:
            return False
        return distributed.any_flag(self.ctx, self._signalled, self.rt.device)

    def _close_window(self, window: Window, metrics: MetricsLog | None, bar: tqdm, score_fid: bool) -> None:
        """One metrics row: the window's means (one host sync), the evaluations due now, a new best.pt."""
        self._raise_if_bad(window)
        step = self.step
        row: dict[str, Any] = {"step": step, "epoch": step // self.batches.steps_per_epoch}
        row.update(window.means(self.cfg.batch_size * self.ctx.world))
        if self.ctx.main:
            row.update(self._evaluate(step, score_fid))
            assert metrics is not None
            metrics.log(row)
            bar.set_postfix(
                {
                    "img/s": row["img_per_s"],
                    "D": row["loss_d"],
                    "G": row["loss_g"],
                    **({"FID": round(self.last_fid, 1)} if self.last_fid is not None else {}),
                }
            )
        if bool(distributed.broadcast(self.ctx, self.best_step == step)):
            self.save(BEST)
            self.save(LAST)
        window.restart()  # img/s measures training, not evaluation

    def _evaluate(self, step: int, score_fid: bool) -> dict[str, Any]:
        """The collapse check and FID that are due at this step (rank 0 only), as metrics fields."""
        cfg, out = self.cfg, {}
        if cfg.collapse_every and step % cfg.collapse_every == 0:
            share, fired = self.check_collapse()
            out["distinct_share"] = round(share, 4)
            if fired:
                self.alarms += 1
                warn(
                    f"mode-collapse alarm at step {step}: only {share:.0%} of {cfg.collapse_samples} "
                    f"EMA samples have distinct pHashes (best so far {self.collapse_best:.0%})"
                )
        if (cfg.fid_every and step % cfg.fid_every == 0) or score_fid:
            score = self.compute_fid()
            self.last_fid = score.fid
            out.update(
                {
                    "fid": round(score.fid, 4),
                    "kid": round(score.kid, 6),
                    "kid_std": round(score.kid_std, 6),
                    "fid_protocol": score.protocol,
                }
            )
            if self.best_fid is None or score.fid < self.best_fid:
                self.best_fid, self.best_step = score.fid, step
                out["best"] = True
        return out

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

    # ---------------------------------------------------------------- what surrounds the loop
    @contextlib.contextmanager
    def _signals_caught(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the current step and save; a second Ctrl-C stops at once without saving."""
        self._signalled = self._stopping = False

        def on_signal(signum, frame) -> None:
            if self._signalled:
                raise KeyboardInterrupt
            self._signalled = True
            if self.ctx.main:
                log.info(
                    "%s received: saving a checkpoint at the end of this step…", signal.Signals(signum).name
                )

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def _metrics_log(self) -> Iterator[MetricsLog | None]:
        """metrics.jsonl (rank 0), opened trimmed to this step; the real grid first, the loss curve last."""
        if not self.ctx.main:
            yield None
            return
        metrics = MetricsLog(self.run_dir, self.step, self.cfg.tensorboard)
        self.write_real_grid()
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

    @contextlib.contextmanager
    def _progress_bar(self, target_step: int) -> Iterator[tqdm]:
        bar = tqdm(
            total=target_step or None,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            desc=f"train {self.run_dir.name}",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        try:
            yield bar
        finally:
            bar.close()


def load_resume(run_dir: Path) -> dict[str, Any] | None:
    path = RunLayout(run_dir).last
    if not path.exists():
        return None
    return checkpoint.load(path)


def target_for(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Total steps this run should reach; 0 means until interrupted."""
    if cfg.epochs:
        return cfg.epochs * steps_per_epoch
    return cfg.max_steps


def sweep_temps(run_dir: Path) -> int:
    return atomic.remove_stale_temps(run_dir)
