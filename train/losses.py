"""What one phase of a GAN step computes and backpropagates, behind `GanLoss.accumulate(phase, batch)`.

As in StyleGAN2-ADA's training/loss.py, a phase ("D" or "G") is everything between `zero_grad`
and the optimizer step: augmentation, D's forward, the adversarial and class losses, backward.
The loop only orders the phases and steps the optimizers, so a new term (an R1 gradient penalty,
say) is one more function here, backpropagated by the phase it belongs to, and the loop does not
change.

The adversarial losses are a registry: each is one function of D's logits and the role those
logits play, so the three places a step needs one (D on real, D on fake, G's update) cannot drift
apart the way three `if cfg.loss == ...` branches did. `[train] loss` accepts exactly the
registered names; adding one is one function decorated with `@loss("name")`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from train.augment import diff_augment

Role = Literal["real", "fake", "generator"]
"""real / fake: D's loss on real or generated images; generator: G's loss on D's logits for its images."""

Phase = Literal["D", "G"]
"""D: D's update on a real and a generated batch; G: G's update through D."""

LossFn = Callable[[torch.Tensor, Role], torch.Tensor]
LOSSES: dict[str, LossFn] = {}


def loss(name: str) -> Callable[[LossFn], LossFn]:
    """Register `fn` under `name`, the value `[train] loss` takes."""

    def register(fn: LossFn) -> LossFn:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        LOSSES[name] = fn
        return fn

    return register


def get(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(sorted(LOSSES))}, got {name!r}")
    return LOSSES[name]


@loss("bce")
def bce(logits: torch.Tensor, role: Role) -> torch.Tensor:
    """BCE on logits; G's side is the non-saturating form (maximise log D(G(z))), as in the DCGAN example."""
    target = torch.zeros_like(logits) if role == "fake" else torch.ones_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


@loss("hinge")
def hinge(logits: torch.Tensor, role: Role) -> torch.Tensor:
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN): D's margin at +-1, G raises D's raw score."""
    if role == "real":
        return F.relu(1 - logits).mean()
    if role == "fake":
        return F.relu(1 + logits).mean()
    return -logits.mean()


def class_loss(
    logits: torch.Tensor | None, labels: torch.Tensor | None, weight: float, device: torch.device
) -> torch.Tensor:
    """AC-GAN class loss over the labelled rows (label -1: none).

    A batch without labelled rows gives 0, and the mean divides by a clamped count on the device
    rather than testing it on the host, so a step never waits for the GPU.
    """
    if logits is None or labels is None:
        return torch.zeros((), device=device)
    total = F.cross_entropy(logits.float(), labels, ignore_index=-1, reduction="sum")
    return weight * total / (labels >= 0).sum().clamp(min=1)


@dataclasses.dataclass
class StepBatch:
    """One step's inputs, drawn by the loop from the run's generator in a fixed order (exact resume needs it).

    `fake` is G(z), made by the first phase that needs it and reused by the next: D's phase scores it
    detached and G's phase backpropagates through the same images, as in the DCGAN example, so G runs
    once per step.
    """

    real: torch.Tensor
    real_labels: torch.Tensor | None
    z: torch.Tensor
    fake_labels: torch.Tensor | None
    fake: torch.Tensor | None = None


DCall = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
"""D as the step calls it: images -> (real/fake logits, class logits or None)."""


@dataclasses.dataclass
class GanLoss:
    """Forward, loss terms and backward of each phase, under the run's autocast and grad scaler.

    `d` is D as its own phase calls it (under DDP it syncs gradients); `d_for_g` is D as G's phase
    calls it, without the DDP wrapper, because D does not step there and a sync would be wasted.
    """

    g: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    d: DCall
    d_for_g: DCall
    d_module: nn.Module
    adversarial: LossFn
    aux_weight: float
    policies: list[str]
    gen: torch.Generator
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler

    def accumulate(self, phase: Phase, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Backpropagate `phase`'s loss into its model's gradients.

        Returns the phase's values for the metrics row still on the device: reading them here would be
        a host sync per step.
        """
        if phase == "D":
            return self._discriminator(batch)
        if phase == "G":
            return self._generator(batch)
        raise ValueError(f"phase must be 'D' or 'G', got {phase!r}")

    def _discriminator(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Real, then fake, each with its own backward, as in the DCGAN example: one graph alive at a time."""
        loss_real, logits = self._score(self.d, batch.real, batch.real_labels, "real")
        # read now: under CUDA graphs a later D call may reuse this output's memory
        d_x = torch.sigmoid(logits.detach()).mean()
        self._backward(loss_real)
        loss_fake, logits = self._score(self.d, self._fake(batch).detach(), batch.fake_labels, "fake")
        d_g_z = torch.sigmoid(logits.detach()).mean()
        self._backward(loss_fake)
        return {"loss_d": loss_real.detach() + loss_fake.detach(), "d_x": d_x, "d_g_z": d_g_z}

    def _generator(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        with frozen(self.d_module):
            loss_g, _ = self._score(self.d_for_g, self._fake(batch), batch.fake_labels, "generator")
            self._backward(loss_g)
        return {"loss_g": loss_g.detach()}

    def _fake(self, batch: StepBatch) -> torch.Tensor:
        if batch.fake is None:
            with self.autocast():
                batch.fake = self.g(batch.z, batch.fake_labels)
        return batch.fake

    def _score(
        self, d: DCall, images: torch.Tensor, labels: torch.Tensor | None, role: Role
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of D's view of (augmented) `images` in `role`, and D's real/fake logits in fp32.

        Logits are cast to fp32 before the loss: bf16/fp16 logits lose the precision BCE needs.
        """
        # D always sees fp32, the real batch's dtype: a compiled D would otherwise keep one graph per
        # input dtype (real fp32, fake bf16). Under autocast its first conv casts to the compute dtype
        # anyway, and a bf16 image is exact in fp32.
        with self.autocast():
            logits, class_logits = d(self.augment(images.float()))
            logits = logits.float()
            value = self.adversarial(logits, role) + class_loss(
                class_logits, labels, self.aux_weight, logits.device
            )
        return value, logits

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment on every image D sees: real and fake alike, or G would learn to produce the
        augmentations; drawn from the run's generator, so a resumed run replays them."""
        return diff_augment(images, self.policies, self.gen) if self.policies else images

    def _backward(self, value: torch.Tensor) -> None:
        self.scaler.scale(value).backward()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for `module` inside: G's backward then skips D's weights, which G's phase
    would compute only for D's next `zero_grad` to throw away."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)
