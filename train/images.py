"""Turning tensors into PNGs a person looks at: sample grids and the loss curve.

Grids go through torchvision's make_grid; files are written atomically so a viewer
refreshing runs/NAME/samples/ never sees half a PNG.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipeline import atomic


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float NCHW -> uint8 NCHW."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """images: float NCHW in [-1, 1] or uint8 NCHW."""
    # Imported here, not at the top: torchvision's package import pulls in its models and torch._dynamo,
    # about 2 s of CPU that every `python -m train` start paid, a config error included.
    from torchvision.utils import make_grid

    if images.dtype != torch.uint8:
        images = to_uint8(images)
    grid = make_grid(images.cpu(), nrow=nrow, padding=2, pad_value=255)
    png = io.BytesIO()
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(png, format="PNG", optimize=True)
    atomic.write_bytes(path, png.getvalue())


def save_real_grid(shard_images: np.ndarray, count: int, seed: int, path: Path) -> None:
    """`count` training faces chosen by `seed`, beside the samples, so a person can compare the
    generator's grids with what it learns from."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(shard_images.shape[0], generator=gen)[:count].sort().values.numpy()
    save_grid(torch.from_numpy(np.array(shard_images[idx])).permute(0, 3, 1, 2), path)


def save_loss_curve(rows: list[dict], path: Path, width: int = 900, height: int = 420) -> bool:
    """A plain two-line chart of loss_d and loss_g against step (Pillow only: no plotting dependency)."""
    points = [(r["step"], r["loss_d"], r["loss_g"]) for r in rows if "loss_d" in r and "loss_g" in r]
    if len(points) < 2:
        return False
    steps = np.array([p[0] for p in points], dtype=float)
    series = {"loss_d": np.array([p[1] for p in points]), "loss_g": np.array([p[2] for p in points])}
    finite = np.concatenate([v[np.isfinite(v)] for v in series.values()])
    lo, hi = float(finite.min()), float(finite.max())
    hi = hi if hi > lo else lo + 1.0
    left, right, top, bottom = 60, 20, 30, 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")

    def xy(step: float, value: float) -> tuple[float, float]:
        x = left + (step - steps[0]) / max(1.0, steps[-1] - steps[0]) * (width - left - right)
        y = height - bottom - (value - lo) / (hi - lo) * (height - top - bottom)
        return x, y

    for tick in np.linspace(lo, hi, 5):
        _, y = xy(steps[0], tick)
        draw.text((4, y - 6), f"{tick:.2f}", fill="black")
    draw.text((left, height - bottom + 8), f"step {int(steps[0])}", fill="black")
    draw.text((width - right - 90, height - bottom + 8), f"step {int(steps[-1])}", fill="black")
    colours = {"loss_d": (200, 30, 30), "loss_g": (30, 60, 200)}
    for offset, (name, values) in enumerate(series.items()):
        line = [xy(s, v) for s, v in zip(steps, values, strict=True) if np.isfinite(v)]
        if len(line) >= 2:
            draw.line(line, fill=colours[name], width=2)
        draw.text((left + 10 + 90 * offset, 8), name, fill=colours[name])
    png = io.BytesIO()
    img.save(png, format="PNG")
    atomic.write_bytes(path, png.getvalue())
    return True
