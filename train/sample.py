"""`python -m train sample`: a checkpoint's EMA generator turned into a grid or an interpolation.

Truncation draws latents from a normal truncated to [-psi, psi] (the BigGAN/StyleGAN
"truncation trick"): smaller psi trades variety for cleaner faces.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import ConfigError
from train import checkpoint, images
from train.models import Generator


def load_generator(path: Path, device: torch.device) -> tuple[Generator, dict]:
    payload = checkpoint.load(path)
    shape = payload["model"]
    vocab = payload["label_vocab"]
    g = Generator(shape["nz"], shape["ngf"], shape["image_size"], len(vocab))
    state = {k.removeprefix("module."): v for k, v in payload["G_ema"].items() if k != "n_averaged"}
    g.load_state_dict(state)
    g.to(device).eval()
    return g, payload


def latents(n: int, nz: int, truncation: float | None, gen: torch.Generator) -> torch.Tensor:
    z = torch.empty(n, nz)
    if truncation is None:
        return z.normal_(generator=gen)
    if truncation <= 0:
        raise ConfigError(f"--truncation must be > 0, got {truncation}")
    return torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=gen)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents live near a sphere, so a straight line cuts through
    low-density space and fades to grey in the middle (White 2016)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def label_ids(payload: dict, label: str | None, n: int) -> torch.Tensor | None:
    vocab = payload["label_vocab"]
    if not vocab:
        if label is not None:
            raise ConfigError("--label needs a checkpoint trained with [train] conditional = true")
        return None
    if label is None:
        return torch.arange(n) % len(vocab)
    if label not in vocab:
        raise ConfigError(f"--label {label!r} is not one of this checkpoint's labels: {', '.join(vocab)}")
    return torch.full((n,), vocab.index(label), dtype=torch.long)


@torch.no_grad()
def make_samples(ckpt: Path, n: int, out: Path, truncation: float | None = None, label: str | None = None,
                 interpolate: int = 0, seed: int = 0, device: torch.device | None = None) -> int:
    """Write the PNG grid; returns how many images it holds."""
    device = device or torch.device("cpu")
    g, payload = load_generator(ckpt, device)
    gen = torch.Generator().manual_seed(seed)
    nz = payload["model"]["nz"]
    if interpolate:
        rows = max(1, n // interpolate)
        a, b = latents(rows, nz, truncation, gen), latents(rows, nz, truncation, gen)
        t = torch.linspace(0, 1, interpolate)
        z = torch.stack([slerp(a, b, ti.expand(rows, 1)) for ti in t], dim=1).reshape(rows * interpolate, nz)
        labels = label_ids(payload, label, rows)
        labels = None if labels is None else labels.repeat_interleave(interpolate)
        nrow = interpolate
    else:
        z = latents(n, nz, truncation, gen)
        labels = label_ids(payload, label, n)
        nrow = 8
    outs = []
    for start in range(0, z.shape[0], 256):
        lab = None if labels is None else labels[start:start + 256].to(device)
        outs.append(g(z[start:start + 256].to(device), lab).cpu())
    grid = torch.cat(outs)
    images.save_grid(grid, out, nrow=nrow)
    return grid.shape[0]
