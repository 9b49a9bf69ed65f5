"""Scoring EMA-G while it trains: FID and KID against the shard, and the mode-collapse alarm.

Both sample EMA-G in eval mode from latents of their own seeded generators, so evaluating never
shifts the training RNG (exact resume depends on that). FID draws the same latents at every check,
so two checks differ by the weights alone, not by sampling noise.

The metrics themselves live in `train.fid` and `train.collapse` and are imported on first use:
InceptionV3 takes seconds to load and most short CPU runs never score, and the bare GPU image
`make bench-gpu` runs on has no ImageHash (it trains with collapse_every = 0).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from pipeline.layout import RunLayout
from train import images
from train.config import TrainConfig
from train.metrics_log import PhaseClock, warn
from train.shard import Shard

if TYPE_CHECKING:
    from train.fid import FidMeter, Score

FID_SEED = 999_000
COLLAPSE_SEED = 777_000  # plus the step: every check hashes new samples
COLLAPSE_BATCH = 128


@torch.no_grad()
def ema_images(ema: AveragedModel, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """EMA-G in eval mode: its averaged BatchNorm statistics, not the batch's."""
    g = ema.module
    g.eval()
    out = g(z, labels)
    g.train()
    return out


@dataclasses.dataclass
class Evaluator:
    """The checks and what they remember: the run's best FID and best distinct-hash share (both kept in
    checkpoints, since the best.pt decision and the alarm compare against them), and this fit's last FID
    and alarm count for its summary."""

    cfg: TrainConfig
    shard: Shard
    files: RunLayout
    label_prior: torch.Tensor | None
    device: torch.device
    progress: bool
    best_fid: float | None = None
    best_step: int | None = None
    collapse_best: float = 0.0
    last_fid: float | None = None
    alarms: int = 0
    meter: FidMeter | None = None

    def due(self, ema: AveragedModel, step: int, score_fid: bool, clock: PhaseClock) -> dict[str, Any]:
        """The checks due at `step` as metrics fields (rank 0 only: the others would score the same
        weights); `score_fid` forces an FID, for the end of a run off the `fid_every` grid."""
        cfg, out = self.cfg, {}
        if cfg.collapse_every and step % cfg.collapse_every == 0:
            with clock.phase("collapse checks"):
                share = self.distinct_share(ema, step)
            out["distinct_share"] = round(share, 4)
            self._check_collapse(share, step)
        if (cfg.fid_every and step % cfg.fid_every == 0) or score_fid:
            with clock.phase("FID"):
                score = self.fid(ema)
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

    def fid(self, ema: AveragedModel) -> Score:
        """FID and KID of EMA-G against the first `fid_samples` shard rows, always from the same latents,
        so that two checks differ by the weights alone."""
        if self.meter is None:
            from train.fid import FidMeter

            self.meter = FidMeter(self.device, self.cfg.fid_batch, progress=self.progress)
            self.meter.set_reference(
                self.shard.images, self.cfg.fid_samples, self.shard.sha256, self.files.fid_reference
            )
        n = self.cfg.fid_samples
        z, labels = self.latents(n, FID_SEED)

        def fake(start: int, count: int) -> torch.Tensor:
            lab = None if labels is None else labels[start : start + count]
            return images.to_uint8(ema_images(ema, z[start : start + count], lab)).float()

        return self.meter.score(self.meter.features(fake, n, "FID samples"))

    def distinct_share(self, ema: AveragedModel, step: int) -> float:
        """Share of distinct pHashes among `collapse_samples` EMA samples, made in batches so memory does
        not grow with the count; new latents each step, so one unlucky draw does not repeat."""
        from train import collapse

        z, labels = self.latents(self.cfg.collapse_samples, COLLAPSE_SEED + step)
        out = []
        for start in range(0, z.shape[0], COLLAPSE_BATCH):
            sl = slice(start, start + COLLAPSE_BATCH)
            lab = None if labels is None else labels[sl]
            out.append(images.to_uint8(ema_images(ema, z[sl], lab)).permute(0, 2, 3, 1).cpu().numpy())
        return collapse.distinct_share(np.concatenate(out))

    def _check_collapse(self, share: float, step: int) -> None:
        """Warn when the share fell sharply from the best seen: an untrained G is nearly constant, so only
        a drop from the run's own best means collapse."""
        from train import collapse

        alarm = collapse.CollapseAlarm(self.cfg.collapse_drop, self.collapse_best)
        fired = alarm.check(share)
        self.collapse_best = alarm.best
        if fired:
            self.alarms += 1
            warn(
                f"mode-collapse alarm at step {step}: only {share:.0%} of {self.cfg.collapse_samples} "
                f"EMA samples have distinct pHashes (best so far {self.collapse_best:.0%})"
            )

    def latents(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents (and labels, at the shard's label frequencies) from their own generator: evaluating
        never advances the training RNG, so a run with checks resumes exactly like one without."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.nz, generator=gen).to(self.device)
        labels = None
        if self.label_prior is not None:
            labels = torch.multinomial(self.label_prior.cpu(), n, replacement=True, generator=gen)
            labels = labels.to(self.device)
        return z, labels
