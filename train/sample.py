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
    """The checkpoint's EMA generator; a checkpoint whose shape or weights do not fit is one line."""
    payload = checkpoint.load(path)
    try:
        shape = payload["model"]
        vocab = payload["label_vocab"]
        g = Generator(shape["nz"], shape["ngf"], shape["image_size"], len(vocab))
        state = {k.removeprefix("module."): v for k, v in payload["G_ema"].items() if k != "n_averaged"}
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise checkpoint.CheckpointError(
            f"{path}: its model description does not make a generator "
            f"({exc.__class__.__name__}: {exc}); it is not this trainer's"
        ) from exc
    checkpoint.load_state(path, "G_ema", g, state)
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


def check_sample_counts(n: int, steps: int) -> None:
    """--n is always the number of images written; --interpolate STEPS splits them into walks of STEPS.

    A count that does not split (`--n 4 --interpolate 10`) is refused rather than rounded: rounding
    either way writes a number of images nobody asked for.
    """
    if n <= 0:
        raise ConfigError(f"--n must be > 0, got {n}")
    if steps < 0 or steps == 1:
        raise ConfigError(
            f"--interpolate STEPS must be >= 2 (images per walk; 0 = no interpolation), got {steps}"
        )
    if steps and n % steps:
        lower, upper = n // steps * steps, (n // steps + 1) * steps
        options = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(
            f"--n {n} does not split into walks of --interpolate {steps} images: --n is the total "
            f"number of images (n / STEPS walks of STEPS each); pass --n {options}"
        )


@torch.no_grad()
def make_samples(
    ckpt: Path,
    n: int,
    out: Path,
    truncation: float | None = None,
    label: str | None = None,
    interpolate: int = 0,
    seed: int = 0,
    device: torch.device | None = None,
) -> int:
    """Write the PNG grid of `n` images (`interpolate`: n / interpolate walks); returns how many it holds."""
    check_sample_counts(n, interpolate)
    device = device or torch.device("cpu")
    g, payload = load_generator(ckpt, device)
    gen = torch.Generator().manual_seed(seed)
    nz = payload["model"]["nz"]
    if interpolate:
        rows = n // interpolate
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
        lab = None if labels is None else labels[start : start + 256].to(device)
        outs.append(g(z[start : start + 256].to(device), lab).cpu())
    grid = torch.cat(outs)
    images.save_grid(grid, out, nrow=nrow)
    return grid.shape[0]
