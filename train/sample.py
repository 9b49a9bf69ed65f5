"""`python -m train sample`: a checkpoint's EMA generator turned into a grid or an interpolation.

Truncation draws latents from a normal truncated to [-psi, psi] (the BigGAN/StyleGAN
"truncation trick"): smaller psi trades variety for cleaner faces.

Latents, images and the PNG are made `BATCH` images at a time and the grid is streamed to
its file (pypng writes rows as they come) one row of images after another, so memory does not grow with `--n`; `--n` itself
is bounded by `[train] sample_max`, because the file and the time still do.
"""

from __future__ import annotations

import argparse
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import png
import torch

from pipeline import atomic
from pipeline.cli import DEFAULT_CONFIG
from pipeline.config import read_config
from pipeline.errors import ConfigError
from train import checkpoint, images
from train import config as train_config
from train.config import TrainConfig
from train.models import Generator
from train.runtime import pick_device

BATCH = 256  # images per generator call (a multiple of the plain grid's 8 columns)
PLAIN_COLUMNS = 8
PADDING = 2  # torchvision make_grid's, as the training grids use


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


def label_ids(payload: dict, label: str | None, n: int, start: int = 0) -> torch.Tensor | None:
    """Labels of images `start .. start + n` (no label given: the checkpoint's classes in turn)."""
    vocab = payload["label_vocab"]
    if not vocab:
        if label is not None:
            raise ConfigError("--label needs a checkpoint trained with [train] conditional = true")
        return None
    if label is None:
        return torch.arange(start, start + n) % len(vocab)
    if label not in vocab:
        raise ConfigError(f"--label {label!r} is not one of this checkpoint's labels: {', '.join(vocab)}")
    return torch.full((n,), vocab.index(label), dtype=torch.long)


def check_sample_counts(n: int, steps: int, limit: int | None = None) -> None:
    """--n is always the number of images written; --interpolate STEPS splits them into walks of STEPS.

    A count that does not split (`--n 4 --interpolate 10`) is refused rather than rounded: rounding
    either way writes a number of images nobody asked for. `limit` is `[train] sample_max`: memory
    stays bounded at any count, but a grid of a hundred million faces is a typo, not a request.
    """
    if n <= 0:
        raise ConfigError(f"--n must be > 0, got {n}")
    if limit is not None and n > limit:
        raise ConfigError(
            f"--n {n} is more than [train] sample_max = {limit}; pass a smaller --n, or raise sample_max "
            "in the [train] table of the config file"
        )
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


def latent_batches(
    payload: dict,
    n: int,
    truncation: float | None,
    label: str | None,
    interpolate: int,
    gen: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(latents, labels) for the grid in order, about BATCH images each; whole walks with --interpolate.

    One batch draws exactly what drawing all at once would, so a grid of up to BATCH images (or walks
    of up to BATCH images in all) is the one earlier versions drew for the same seed."""
    nz = payload["model"]["nz"]
    if not interpolate:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            yield latents(count, nz, truncation, gen), label_ids(payload, label, count, start)
        return
    walks, per_batch = n // interpolate, max(1, BATCH // interpolate)
    t = torch.linspace(0, 1, interpolate)
    for first in range(0, walks, per_batch):
        rows = min(per_batch, walks - first)
        a, b = latents(rows, nz, truncation, gen), latents(rows, nz, truncation, gen)
        z = torch.stack([slerp(a, b, ti.expand(rows, 1)) for ti in t], dim=1).reshape(rows * interpolate, nz)
        labels = label_ids(payload, label, rows, first)
        yield z, None if labels is None else labels.repeat_interleave(interpolate)


def grid_rows(batches: Iterator[torch.Tensor], n: int, nrow: int) -> tuple[int, int, Iterator[np.ndarray]]:
    """The grid torchvision's make_grid draws (`nrow` columns, 2 px of white between and around, a
    single image alone) as its width, its height and its pixel rows, made as they are written.

    `batches` are uint8 NCHW images in grid order; only one row of images is held at a time."""
    first = next(batches)
    height, width = first.shape[2], first.shape[3]
    columns, pad = min(nrow, n), 0 if n == 1 else PADDING
    grid_w = columns * (width + pad) + pad
    grid_h = -(-n // columns) * (height + pad) + pad
    return grid_w, grid_h, _rows(itertools.chain([first], batches), columns, pad, grid_w)


def _rows(batches: Iterator[torch.Tensor], columns: int, pad: int, grid_w: int) -> Iterator[np.ndarray]:
    yield from (np.full(grid_w * 3, 255, np.uint8) for _ in range(pad))
    pending: list[np.ndarray] = []
    for batch in batches:
        pending.extend(batch.permute(0, 2, 3, 1).numpy())
        while len(pending) >= columns:
            yield from _band(pending[:columns], pad, grid_w)
            del pending[:columns]
    if pending:
        yield from _band(pending, pad, grid_w)


def _band(tiles: list[np.ndarray], pad: int, grid_w: int) -> Iterator[np.ndarray]:
    """One row of images with the white below and between them, as flat RGB pixel rows."""
    height, width = tiles[0].shape[:2]
    band = np.full((height + pad, grid_w, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        left = k * (width + pad) + pad
        band[:height, left : left + width] = tile
    yield from band.reshape(height + pad, grid_w * 3)


def _part(labels: torch.Tensor | None, start: int, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else labels[start : start + BATCH].to(device)


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
    limit: int | None = None,
) -> int:
    """Write the PNG grid of `n` images (`interpolate`: n / interpolate walks); returns how many it holds.

    `limit` is `[train] sample_max`. Every check runs before the file is opened (the counts before the
    checkpoint is even read), so a refused request leaves no file behind."""
    check_sample_counts(n, interpolate, limit)
    if truncation is not None and truncation <= 0:
        raise ConfigError(f"--truncation must be > 0, got {truncation}")
    device = device or torch.device("cpu")
    g, payload = load_generator(ckpt, device)
    label_ids(payload, label, 0)  # an unknown label is refused before the file is opened
    gen = torch.Generator().manual_seed(seed)
    batches = (
        images.to_uint8(g(z[start : start + BATCH].to(device), _part(labels, start, device)).cpu())
        for z, labels in latent_batches(payload, n, truncation, label, interpolate, gen)
        for start in range(0, z.shape[0], BATCH)
    )
    width, height, rows = grid_rows(batches, n, interpolate or PLAIN_COLUMNS)
    with atomic.atomic_open(out, "wb") as fh:
        png.Writer(width, height, greyscale=False, bitdepth=8, compression=6).write(fh, rows)
    return n


def sample_command(args: argparse.Namespace) -> int:
    """`python -m train sample`: the grid the flags ask for, bounded by the config's [train] sample_max."""
    count = make_samples(
        args.ckpt,
        args.n,
        args.out,
        args.truncation,
        args.label,
        args.interpolate,
        args.seed,
        pick_device(args.device),
        limit=sample_config(args.config).sample_max,
    )
    logging.getLogger("train sample").info("wrote %d images to %s", count, args.out)
    return 0


def sample_config(path: Path) -> TrainConfig:
    """The [train] table `sample` obeys. Sampling needs no config, so the default file may be absent
    (all defaults); a file named with --config must exist, as for every stage."""
    if not path.is_file() and path == Path(DEFAULT_CONFIG):
        return TrainConfig()
    return train_config.load(read_config(path))
