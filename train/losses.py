"""The adversarial losses, as a registry: adding one is one function here, decorated with `@loss("name")`.

Each loss is a single function of D's logits and the role those logits play, so the three
places a GAN step needs a loss (D on real, D on fake, G's update) cannot drift apart the way
three `if cfg.loss == ...` branches did. `[train] loss` accepts exactly the registered names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

Role = Literal["real", "fake", "generator"]
"""real / fake: D's loss on real or generated images; generator: G's loss on D's logits for its images."""

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
