"""The DCGAN generator and discriminator, shaped like the PyTorch DCGAN example.

The discriminator returns logits (no Sigmoid) so that BCE-with-logits and hinge
loss stay numerically safe under autocast. With `n_classes > 0` the generator takes
a one-hot label beside z and the discriminator grows an auxiliary classifier head
(AC-GAN, Odena et al. 2017) that shares every feature layer with the real/fake head.
Samples, FID and the collapse alarm use an exponential moving average of G (`ema_update`).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel


def _depth(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and the image (3 for 64x64, as in the example)."""
    return int(math.log2(image_size)) - 3


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, image_size: int = 64, n_classes: int = 0):
        super().__init__()
        self.nz, self.n_classes = nz, n_classes
        depth = _depth(image_size)
        mult = 2**depth
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz + n_classes, ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mult),
            nn.ReLU(True),
        ]
        for _ in range(depth):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels")
            onehot = F.one_hot(labels, self.n_classes).to(z.dtype)
            z = torch.cat([z, onehot], dim=1)
        return self.main(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, image_size: int = 64, n_classes: int = 0):
        super().__init__()
        depth = _depth(image_size)
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for _ in range(depth):
            layers += [
                nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * mult * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            mult *= 2
        self.features = nn.Sequential(*layers)
        self.adv = nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False)
        self.aux = nn.Conv2d(ndf * mult, n_classes, 4, 1, 0, bias=False) if n_classes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x)
        adv = self.adv(h).flatten()
        aux = self.aux(h).flatten(1) if self.aux is not None else None
        return adv, aux


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) conv weights and N(1, 0.02) BatchNorm scales, as in Radford et al."""
    name = module.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(
    nz: int, ngf: int, ndf: int, image_size: int, n_classes: int
) -> tuple[Generator, Discriminator]:
    generator = Generator(nz, ngf, image_size, n_classes)
    discriminator = Discriminator(ndf, image_size, n_classes)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return generator, discriminator


def wrap_for_step(
    g: Generator, d: Discriminator, ddp: bool, device: torch.device, compile_mode: str | None
) -> tuple[Any, Any, Any, bool]:
    """G and D as the step calls them: (G, D for D's phase, D for G's phase, whether CUDA graphs replay).

    Under DDP, BatchNorm buffers stay per rank: broadcasting them while D runs twice per step (real,
    then fake) is the known DDP-GAN in-place error, and D never uses them. G's phase calls D without
    DDP, since D does not step there and its gradient sync would be wasted. CUDA graphs
    (compile_mode other than "default") replay into the same memory, so each step must mark where
    a new iteration begins.
    """
    g_fwd: Any = g
    d_fwd: Any = d
    if ddp:
        ids = [device.index] if device.type == "cuda" else None
        g_fwd = DDP(g, device_ids=ids, broadcast_buffers=False)
        d_fwd = DDP(d, device_ids=ids, broadcast_buffers=False)
    d_for_g: Any = d
    if compile_mode is not None:
        # Static shapes: every step has the same batch shape, and dynamic shapes (which dynamo switches
        # to after a second shape) generate slower kernels and more graphs.
        g_fwd = torch.compile(g_fwd, mode=compile_mode, dynamic=False)
        d_fwd = torch.compile(d_fwd, mode=compile_mode, dynamic=False)
        d_for_g = d_fwd if not ddp else torch.compile(d, mode=compile_mode, dynamic=False)
    graphs = compile_mode not in (None, "default") and device.type == "cuda"
    return g_fwd, d_fwd, d_for_g, graphs


@torch.no_grad()
def ema_update(ema: AveragedModel, model: nn.Module, decay: float) -> None:
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
