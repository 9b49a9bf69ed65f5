"""The training loop: one `Trainer` that owns models, optimizers, RNG and the run directory.

Reads top to bottom as the design asks: build (data -> models -> optimizers), maybe resume,
then `fit` runs steps and, on their schedules, logs, samples, checkpoints, scores FID and
checks for mode collapse. Per-step values stay on the device and are read once per logging
interval, because a `.item()` per step stalls a GPU pipeline.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pipeline import atomic
from train import checkpoint, collapse, distributed, images
from train.augment import diff_augment
from train.batches import DeviceBatches
from train.config import TrainConfig, from_dict
from train.metrics_log import MetricsLog, warn
from train.models import build_models
from train.runtime import Runtime, switch_on
from train.shard import Shard

N_FIXED = 64


def ema_with_warmup(decay: float):
    """EMA update for AveragedModel whose decay ramps up as min(decay, (1 + n) / (10 + n)).

    With a fixed 0.999 the average is still ~80% initial weights after 250 steps, so early sample
    grids and FIDs show a grey untrained generator; the ramp (as in Tensorflow's
    ExponentialMovingAverage with num_updates) lets the EMA follow G closely early on.
    """

    @torch.no_grad()
    def update(ema_params, current_params, num_averaged):
        n = int(num_averaged)
        weight = 1.0 - min(decay, (1 + n) / (10 + n))
        floats = [(e, c) for e, c in zip(ema_params, current_params, strict=True) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [c for _, c in floats], weight)
        for e, c in zip(ema_params, current_params, strict=True):
            if not e.is_floating_point():
                e.copy_(c)

    return update


class NonFiniteLoss(RuntimeError):
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


class Trainer:
    def __init__(self, cfg: TrainConfig, shard: Shard, rt: Runtime, ctx: distributed.Dist, run_dir: Path):
        self.cfg, self.shard, self.rt, self.ctx, self.run_dir = cfg, shard, rt, ctx, run_dir
        device = rt.device
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)

        # data
        labels, self.vocab = (shard.labels(cfg.label) if cfg.conditional else (None, []))
        self.n_classes = len(self.vocab)
        self.batches = DeviceBatches(shard.images, labels, cfg.batch_size, device, cfg.seed, ctx.rank, ctx.world,
                                     cfg.flip, rt.memory_format)
        if labels is not None:
            counts = np.bincount(labels[labels >= 0], minlength=self.n_classes).astype(np.float64)
            self.label_prior = torch.tensor(counts / counts.sum(), dtype=torch.float32, device=device)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + ctx.rank)

        # models
        self.g_core, self.d_core = build_models(cfg.nz, cfg.ngf, cfg.ndf, cfg.image_size, self.n_classes)
        self.g_core.to(device, memory_format=rt.memory_format)
        self.d_core.to(device, memory_format=rt.memory_format)
        self.ema = AveragedModel(self.g_core, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True)
        self.g_fwd: Any = self.g_core
        self.d_fwd: Any = self.d_core
        if ctx.enabled:
            # BatchNorm buffers stay per rank: broadcasting them while D runs twice per step
            # (real, then fake) is the known DDP-GAN in-place error, and D never uses them.
            ids = [device.index] if device.type == "cuda" else None
            self.g_fwd = DDP(self.g_core, device_ids=ids, broadcast_buffers=False)
            self.d_fwd = DDP(self.d_core, device_ids=ids, broadcast_buffers=False)
        self.d_gstep: Any = self.d_core  # G's step needs no D gradient sync
        if cfg.compile:
            self.g_fwd = torch.compile(self.g_fwd)
            self.d_fwd = torch.compile(self.d_fwd)
            self.d_gstep = self.d_fwd if not ctx.enabled else torch.compile(self.d_core)

        # optimizers
        fused = switch_on(cfg.fused_adam, device)
        self.opt_g = torch.optim.Adam(self.g_core.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), fused=fused)
        self.opt_d = torch.optim.Adam(self.d_core.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), fused=fused)
        self.scaler = torch.amp.GradScaler(device.type, enabled=rt.use_scaler)

        # fixed noise for sample grids, independent of the training RNG
        fixed = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(N_FIXED, cfg.nz, generator=fixed).to(device)
        self.fixed_labels = (torch.arange(N_FIXED, device=device) // 8 % self.n_classes) if self.n_classes else None

        self.step = 0
        self.best_fid: float | None = None
        self.best_step: int | None = None
        self.alarm = collapse.CollapseAlarm(cfg.collapse_drop)
        self.fid_meter = None
        self._stop = False

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
            "collapse_best": self.alarm.best,
        }

    def save(self, name: str = "last.pt") -> None:
        payload = self.payload()  # every rank joins the gather
        if self.ctx.main:
            checkpoint.save(self.run_dir / name, payload)
        distributed.barrier(self.ctx)

    def restore(self, payload: dict[str, Any]) -> None:
        if payload["model"] != self.cfg.model_shape():
            raise checkpoint.CheckpointError(
                f"{self.run_dir / 'last.pt'} was trained with {payload['model']}, but the config now says "
                f"{self.cfg.model_shape()}; restore those [train] keys or pick another --run"
            )
        if payload["shard_sha256"] != self.shard.sha256 and self.ctx.main:
            warn("the shard changed since this run's last checkpoint; training continues on the new shard")
        self.g_core.load_state_dict(payload["G"])
        self.d_core.load_state_dict(payload["D"])
        self.ema.load_state_dict(payload["G_ema"])
        self.opt_g.load_state_dict(payload["opt_g"])
        self.opt_d.load_state_dict(payload["opt_d"])
        for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:  # a lowered LR in the config applies on resume
                group["lr"] = lr
                group["betas"] = (self.cfg.beta1, self.cfg.beta2)
        self.scaler.load_state_dict(payload["scaler"])
        checkpoint.set_rng_state(payload["rng"])
        if payload["world"] == self.ctx.world:
            self.gen.set_state(payload["train_gen"][self.ctx.rank].to(self.gen.get_state().device))
        elif self.ctx.main:
            warn(f"resuming a {payload['world']}-process run on {self.ctx.world}: per-rank RNG streams are re-seeded")
        self.step = int(payload["step"])
        self.best_fid, self.best_step = payload["best_fid"], payload["best_step"]
        self.alarm.best = float(payload["collapse_best"])

    # ---------------------------------------------------------------- one step
    def _fake_labels(self, n: int) -> torch.Tensor | None:
        if not self.n_classes:
            return None
        return torch.multinomial(self.label_prior, n, replacement=True, generator=self.gen)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.policies(), self.gen) if self.cfg.diffaugment else x

    def _adv_d_real(self, logits: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "hinge":
            return F.relu(1 - logits).mean()
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def _adv_d_fake(self, logits: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "hinge":
            return F.relu(1 + logits).mean()
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))

    def _adv_g(self, fake: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "hinge":
            return -fake.mean()
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # non-saturating

    def _aux(self, logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        if logits is None or labels is None:
            return torch.zeros((), device=self.rt.device)
        if not bool((labels >= 0).any()):
            return logits.sum() * 0.0
        return self.cfg.aux_weight * F.cross_entropy(logits.float(), labels, ignore_index=-1)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One D update (real, then fake, as in the DCGAN example) and one G update."""
        cfg, rt = self.cfg, self.rt
        real, real_labels = self.batches.batch(self.step, self.gen)
        b = real.shape[0]
        z = torch.randn(b, cfg.nz, generator=self.gen, device=rt.device)
        fake_labels = self._fake_labels(b)

        self.opt_d.zero_grad(set_to_none=True)
        with rt.autocast():
            out_real, aux_real = self.d_fwd(self._aug(real))
            out_real = out_real.float()
            loss_real = self._adv_d_real(out_real) + self._aux(aux_real, real_labels)
        self.scaler.scale(loss_real).backward()
        with rt.autocast():
            fake = self.g_fwd(z, fake_labels)
            out_fake, aux_fake = self.d_fwd(self._aug(fake.detach()))
            out_fake = out_fake.float()
            loss_fake = self._adv_d_fake(out_fake) + self._aux(aux_fake, fake_labels)
        self.scaler.scale(loss_fake).backward()
        self.scaler.step(self.opt_d)

        self.opt_g.zero_grad(set_to_none=True)
        self.d_core.requires_grad_(False)
        with rt.autocast():
            out_g, aux_g = self.d_gstep(self._aug(fake))
            out_g = out_g.float()
            loss_g = self._adv_g(out_g) + self._aux(aux_g, fake_labels)
        self.scaler.scale(loss_g).backward()
        self.d_core.requires_grad_(True)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.ema.update_parameters(self.g_core)
        self.step += 1
        with torch.no_grad():
            return {
                "loss_d": (loss_real + loss_fake).detach(),
                "loss_g": loss_g.detach(),
                "d_x": torch.sigmoid(out_real.detach()).mean(),
                "d_g_z": torch.sigmoid(out_fake.detach()).mean(),
            }

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
            labels = torch.multinomial(self.label_prior.cpu(), n, replacement=True, generator=gen).to(self.rt.device)
        return z, labels

    def write_samples(self) -> None:
        images.save_grid(self.ema_images(self.fixed_z, self.fixed_labels), self.run_dir / "samples" / f"step_{self.step:07d}.png")

    def write_real_grid(self) -> None:
        path = self.run_dir / "samples" / "real.png"
        if not path.exists():
            gen = torch.Generator().manual_seed(self.cfg.seed)
            idx = torch.randperm(self.shard.count, generator=gen)[:N_FIXED].sort().values.numpy()
            rows = torch.from_numpy(np.array(self.shard.images[idx])).permute(0, 3, 1, 2)
            images.save_grid(rows, path)

    def check_collapse(self) -> tuple[float, bool]:
        z, labels = self._random_latents(self.cfg.collapse_samples, 777_000 + self.step)
        out = []
        for start in range(0, z.shape[0], 128):
            sl = slice(start, start + 128)
            lab = None if labels is None else labels[sl]
            out.append(images.to_uint8(self.ema_images(z[sl], lab)).permute(0, 2, 3, 1).cpu().numpy())
        share = collapse.distinct_share(np.concatenate(out))
        return share, self.alarm.check(share)

    def compute_fid(self):
        from train.fid import FidMeter

        if self.fid_meter is None:
            self.fid_meter = FidMeter(self.rt.device, self.cfg.fid_batch)
            self.fid_meter.set_reference(self.shard.images, self.cfg.fid_samples, self.shard.sha256,
                                         self.run_dir / "fid_ref.npz")
        n = self.cfg.fid_samples
        z, labels = self._random_latents(n, 999_000)  # the same latents every time: less noise between checks

        def fake(start: int, count: int) -> torch.Tensor:
            lab = None if labels is None else labels[start:start + count]
            return images.to_uint8(self.ema_images(z[start:start + count], lab)).float()

        return self.fid_meter.score(self.fid_meter.features(fake, n))

    # ---------------------------------------------------------------- the loop
    def _on_signal(self, signum, frame) -> None:
        if self._stop:  # a second Ctrl-C means: stop now, without saving
            raise KeyboardInterrupt
        self._stop = True
        if self.ctx.main:
            tqdm.write(f"train: {signal.Signals(signum).name} received: saving a checkpoint at the end of this step…",
                       file=sys.stderr)

    def fit(self, target_step: int) -> FitResult:
        cfg, ctx, main = self.cfg, self.ctx, self.ctx.main
        start_step = self.step
        old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        log = MetricsLog(self.run_dir, start_step, cfg.tensorboard) if main else None
        if main:
            self.write_real_grid()
        sums: dict[str, torch.Tensor] = {}
        bad_step = torch.tensor(-1, device=self.rt.device)
        n_in_window, window_start = 0, time.perf_counter()
        t0 = time.perf_counter()
        last_fid: float | None = None
        alarms = 0
        saved_step = start_step
        bar = tqdm(total=target_step or None, initial=start_step, disable=not main, unit="step",
                   desc=f"train {self.run_dir.name}", dynamic_ncols=True, file=sys.stderr)
        try:
            while (target_step == 0 or self.step < target_step) and not self._stop:
                values = self.train_step()
                loss_sum = values["loss_d"] + values["loss_g"]
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss_sum),
                                       torch.tensor(self.step, device=self.rt.device), bad_step)
                for key, value in values.items():
                    sums[key] = sums[key] + value if key in sums else value.clone()
                n_in_window += 1
                bar.update(1)
                step = self.step
                at_end = step == target_step
                self._stop = distributed.any_flag(ctx, self._stop, self.rt.device)
                if step % cfg.log_every == 0 or at_end or self._stop:
                    self._raise_if_bad(int(bad_step.item()), saved_step)
                    elapsed = time.perf_counter() - window_start
                    row: dict[str, Any] = {"step": step, "epoch": step // self.batches.steps_per_epoch}
                    row.update({k: round(float(v.item()) / n_in_window, 6) for k, v in sums.items()})
                    row["img_per_s"] = round(n_in_window * cfg.batch_size * ctx.world / max(elapsed, 1e-9), 2)
                    sums, n_in_window = {}, 0
                    if cfg.collapse_every and (step % cfg.collapse_every == 0) and main:
                        share, fired = self.check_collapse()
                        row["distinct_share"] = round(share, 4)
                        if fired:
                            alarms += 1
                            warn(f"mode-collapse alarm at step {step}: only {share:.0%} of {cfg.collapse_samples} "
                                 f"EMA samples have distinct pHashes (best so far {self.alarm.best:.0%})")
                    if cfg.fid_every and (step % cfg.fid_every == 0 or at_end) and main:
                        score = self.compute_fid()
                        last_fid = score.fid
                        row.update({"fid": round(score.fid, 4), "kid": round(score.kid, 6), "kid_std": round(score.kid_std, 6),
                                    "fid_protocol": score.protocol})
                        if self.best_fid is None or score.fid < self.best_fid:
                            self.best_fid, self.best_step = score.fid, step
                            row["best"] = True
                    if main:
                        assert log is not None
                        log.log(row)
                        bar.set_postfix({"img/s": row["img_per_s"], "D": row["loss_d"], "G": row["loss_g"],
                                         **({"FID": round(last_fid, 1)} if last_fid is not None else {})})
                    new_best = self.best_step == step
                    new_best = bool(distributed.broadcast(ctx, new_best))
                    if new_best:
                        self.save("best.pt")
                        self.save("last.pt")
                        saved_step = step
                    window_start = time.perf_counter()  # img/s measures training, not evaluation
                if main and cfg.sample_every and (step % cfg.sample_every == 0 or at_end or self._stop):
                    self.write_samples()
                due = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or at_end or self._stop
                if due and saved_step != step:
                    self._raise_if_bad(int(bad_step.item()), saved_step)
                    self.save("last.pt")
                    saved_step = step
        finally:
            bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if log is not None:
                if main:
                    images.save_loss_curve(log.rows(), self.run_dir / "loss_curve.png")
                log.close()
        return FitResult(start_step, self.step, self._stop, self.best_fid, self.best_step, last_fid, alarms,
                         (self.step - start_step) * cfg.batch_size * ctx.world, time.perf_counter() - t0)

    def _raise_if_bad(self, bad_step: int, saved_step: int) -> None:
        if bad_step >= 0:
            last = self.run_dir / "last.pt"
            where = f"the last good checkpoint is {last} (step {saved_step})" if last.exists() else "no checkpoint was saved"
            raise NonFiniteLoss(
                f"non-finite loss at step {bad_step}; training stopped and nothing after it was saved; {where}. "
                "Lower [train] lr_g/lr_d (or turn autocast off) and re-run to resume from it"
            )


def load_resume(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "last.pt"
    if not path.exists():
        return None
    return checkpoint.load(path)


def config_of(payload: dict[str, Any]) -> TrainConfig:
    return from_dict(payload["config"])


def target_for(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Total steps this run should reach; 0 means until interrupted."""
    if cfg.epochs:
        return cfg.epochs * steps_per_epoch
    return cfg.max_steps


def sweep_temps(run_dir: Path) -> int:
    return atomic.remove_stale_temps(run_dir)

