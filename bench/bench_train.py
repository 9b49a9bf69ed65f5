"""Trainer vs a loop written like the PyTorch DCGAN example, in one run, same model and data: speed and quality.

Baseline: the 2,000 shared faces as 64x64 PNG files, `ImageFolder` + `DataLoader(num_workers=2)`,
fp32, the example's Sigmoid + BCELoss discriminator, `.item()` logging every batch.
Ours: the same faces as a uint8 shard indexed on the device, with the config's speed switches.
Each switch is then turned off (or on) alone to print its own effect. Batch size 64 everywhere.
Whether the faces are better is `bench.bench_quality`'s row (KID at equal wall-clock and equal steps).
On a CUDA machine the same command (`make bench ARGS="--only train"`) measures both on the GPU;
`make bench-gpu` (bench/bench_gpu.py) runs the full-size GPU check.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.report import BenchResult

BATCH = 64
WARMUP = 2
STEPS = int(os.environ.get("BENCH_TRAIN_STEPS", "4"))
ROUNDS = int(os.environ.get("BENCH_TRAIN_ROUNDS", "3"))


def _prepare(data_dir: Path, testdata: Path) -> tuple[Path, Path]:
    """The 2,000 shared test faces at 64x64, as PNG files for the baseline and a shard for the trainer."""
    return prepare_faces(testdata / "faces", data_dir)


def prepare_faces(source: Path, work: Path) -> tuple[Path, Path]:
    """The faces in `source` at 64x64 twice: PNG files (the example's ImageFolder input) and a shard
    (ours), so both loops train on the same pixels. Reused when both are already there."""
    from train.shard import shard_paths, write_shard

    png_dir, shard_dir = work / "png" / "faces", work / "shard"
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if shard_paths(shard_dir)[0].exists() and len(list(png_dir.glob("*.png"))) == len(files):
        return png_dir.parent, shard_dir
    png_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in files:
        image = Image.open(f).convert("RGB").resize((64, 64), Image.BICUBIC)
        image.save(png_dir / f"{f.stem}.png")
        rows.append(np.asarray(image))
    write_shard(shard_dir, np.stack(rows), ids=[f.stem for f in files])
    return png_dir.parent, shard_dir


class ExampleLoop:
    """The PyTorch DCGAN example's loop (examples/dcgan/main.py), one `step()` per batch."""

    def __init__(
        self, png_root: Path, device: torch.device, batch: int = BATCH, width: int = 64, workers: int = 2
    ):
        import torchvision.datasets as dset
        import torchvision.transforms as transforms
        from torch import nn

        from train.models import build_models

        dataset = dset.ImageFolder(
            root=str(png_root),
            transform=transforms.Compose(
                [
                    transforms.Resize(64),
                    transforms.CenterCrop(64),
                    transforms.ToTensor(),
                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                ]
            ),
        )
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            drop_last=True,
            persistent_workers=workers > 0,
        )
        net_g, net_d_core = build_models(100, width, width, 64, 0)

        class ExampleD(nn.Module):  # the example's D ends in Sigmoid and is trained with BCELoss
            def __init__(self):
                super().__init__()
                self.core = net_d_core

            def forward(self, x):
                return torch.sigmoid(self.core(x)[0])

        self.device = device
        self.net_g, self.net_d = net_g.to(device), ExampleD().to(device)
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.batches = iter(())

    def step(self) -> None:
        data = next(self.batches, None)
        if data is None:
            self.batches = iter(self.loader)
            data = next(self.batches)
        net_d, net_g, criterion, device = self.net_d, self.net_g, self.criterion, self.device
        net_d.zero_grad()
        real = data[0].to(device)
        b = real.size(0)
        label = torch.full((b,), 1.0, device=device)
        output = net_d(real)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        d_x = output.mean().item()
        noise = torch.randn(b, 100, device=device)
        fake = net_g(noise)
        label.fill_(0.0)
        output = net_d(fake.detach())
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = output.mean().item()
        self.opt_d.step()
        net_g.zero_grad()
        label.fill_(1.0)
        output = net_d(fake)
        err_g = criterion(output, label)
        err_g.backward()
        d_g_z2 = output.mean().item()
        self.opt_g.step()
        # the example prints these
        _ = (
            err_d_real.item() + err_d_fake.item(),
            err_g.item(),
            d_x,
            d_g_z1,
            d_g_z2,
        )

    @torch.no_grad()
    def images(self, z: torch.Tensor) -> torch.Tensor:
        """As the example draws its fixed-noise grid: netG(noise) in training mode (batch statistics)."""
        return self.net_g(z)


def _baseline(png_root: Path, device: torch.device, batch: int = BATCH) -> Callable[[], None]:
    return ExampleLoop(png_root, device, batch).step


def _trainer(shard_dir: Path, device: torch.device, batch: int = BATCH, **switches):
    from train import distributed
    from train.config import TrainConfig
    from train.loop import Trainer
    from train.runtime import make_runtime
    from train.shard import open_shard

    cfg = dataclasses.replace(TrainConfig(batch_size=batch, tensorboard=False), **switches)
    return Trainer(
        cfg,
        open_shard(shard_dir),
        make_runtime(cfg, device),
        distributed.Dist(),
        shard_dir / "run",
        progress=False,
    )


def _ours(shard_dir: Path, device: torch.device, batch: int = BATCH, **switches) -> Callable[[], dict]:
    """Trainer.train_step as a step function; the loss is read once per timed block, as the trainer
    reads it once per logging interval."""
    return _trainer(shard_dir, device, batch, **switches).train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, steps: int, batch: int = BATCH) -> float:
    """img/s over `steps` calls, synchronised at the end only."""
    t0 = time.perf_counter()
    out = None
    for _ in range(steps):
        out = step()
    if isinstance(out, dict):
        float(out["loss_d"])
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def cpu_capability() -> str:
    """What this CPU reports about native bf16 and what autocast_cpu = "auto" therefore does, in words."""
    from train.runtime import cpu_autocast, cpu_bf16_features

    found = cpu_bf16_features()
    _, decision = cpu_autocast("auto")
    return (
        f"CPU reports {', '.join(found) if found else 'no avx512_bf16/amx_bf16'} "
        f"(torch capability {torch.backends.cpu.get_cpu_capability()}); {decision}"
    )


def _switches(device: torch.device, native_bf16: bool) -> dict[str, dict]:
    """Each switch flipped from its default ("auto" = on, on every device; autocast_cpu auto = on where native)."""
    flip = "off"
    switches: dict[str, dict] = {"channels_last": {"channels_last": flip}, "fused_adam": {"fused_adam": flip}}
    if device.type == "cuda":
        switches.update(autocast={"autocast": False}, cudnn_benchmark={"cudnn_benchmark": False})
    elif native_bf16:
        switches["autocast_cpu"] = {"autocast_cpu": "off"}
    if os.environ.get("BENCH_TRAIN_COMPILE", "1") == "1":
        switches["compile"] = {"compile": True}
    return switches


def _best_rates(
    variants: dict[str, tuple[str, Callable[[], object]]], device: torch.device
) -> tuple[dict[str, float], dict[str, float]]:
    """Every variant warmed up (its start-up time kept), then timed in interleaved rounds; the best
    round counts, because on a shared machine the noise only ever slows a round down."""
    startup = {}
    for name, (_, step) in variants.items():
        t0 = time.perf_counter()
        for _ in range(WARMUP):
            step()
        startup[name] = time.perf_counter() - t0
    best = dict.fromkeys(variants, 0.0)
    for _ in range(ROUNDS):
        for name, (_, step) in variants.items():
            best[name] = max(best[name], _timed(step, device, STEPS))
    return best, startup


def _switch_row(name: str, label: str, best: dict, startup: dict, capability: str) -> BenchResult:
    if name == "compile":  # off by default: ratio = on / off
        note = f"{label}; warm-up (incl. compiling) took {startup[name]:.0f} s"
        return BenchResult(
            "train", f"switch: {name} on vs off", best[name], best["ours"], "img/s", True, "", note
        )
    note = f"off = {label}" + (f"; {capability}" if name == "autocast_cpu" else "")
    return BenchResult(
        "train", f"switch: {name} on vs off", best["ours"], best[name], "img/s", True, "", note
    )


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    """The trainer against the example loop, then each speed switch on against off."""
    from train.runtime import cpu_bf16_features

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    png_root, shard_dir = _prepare(Path(data_dir) / "train", Path(testdata))
    native_bf16 = device.type == "cpu" and bool(cpu_bf16_features())
    capability = cpu_capability() if device.type == "cpu" else f"GPU {torch.cuda.get_device_name(device)}"
    print(f"train bench on {device.type}: {capability}", flush=True)
    variants = {
        "baseline": ("DCGAN-example loop", _baseline(png_root, device)),
        "ours": ("defaults", _ours(shard_dir, device)),
    }
    switches = _switches(device, native_bf16)
    for name, change in switches.items():
        variants[name] = (
            ", ".join(f"{k}={v}" for k, v in change.items()),
            _ours(shard_dir, device, **change),
        )
    best, startup = _best_rates(variants, device)
    where = (
        f"{device.type}, {torch.get_num_threads()} threads, best of {ROUNDS} interleaved rounds of {STEPS} steps, "
        f"batch {BATCH}; {capability}"
    )
    results = [
        BenchResult(
            "train",
            "img/s, trainer vs DCGAN-example loop",
            best["ours"],
            best["baseline"],
            "img/s",
            True,
            "CPU >= 2x",
            where,
        )
    ]
    results += [_switch_row(name, variants[name][0], best, startup, capability) for name in switches]
    if device.type == "cpu" and not native_bf16:
        results.append(
            BenchResult(
                "train",
                "switch: bf16 autocast on CPU",
                0.0,
                None,
                "img/s",
                True,
                "",
                f"not run: {capability}",
            )
        )
    return results
