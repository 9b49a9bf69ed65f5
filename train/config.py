"""The `[train]` section of dataset.toml as a dataclass; every default here is documented in docs/train.md.

Model-shape keys (nz, ngf, ndf, image_size, conditional) are stored in every checkpoint,
so a resumed run or `sample` rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.config import build, section

MODEL_KEYS = ("nz", "ngf", "ndf", "image_size", "conditional", "label")

# key: (low, high or None, low excluded, high excluded). NaN and infinity are refused for every float by
# pipeline.config.build before these are checked.
RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    "nz": (1, None, False, False),
    "ngf": (1, None, False, False),
    "ndf": (1, None, False, False),
    "batch_size": (1, None, False, False),
    # Adam needs lr > 0; too large a one diverges, which the loop catches (5)
    "lr_g": (0.0, None, True, False),
    "lr_d": (0.0, None, True, False),
    "beta1": (0.0, 1.0, False, True),  # Adam's betas are in [0, 1)
    "beta2": (0.0, 1.0, False, True),
    "aux_weight": (0.0, None, False, False),
    "ema_decay": (0.0, 1.0, False, True),
    "seed": (0, 2**32 - 1, False, False),  # numpy's seed range
    "max_steps": (0, None, False, False),
    "epochs": (0, None, False, False),
    "log_every": (1, None, False, False),
    "sample_every": (0, None, False, False),
    "checkpoint_every": (0, None, False, False),
    "fid_every": (0, None, False, False),
    "fid_samples": (2, None, False, False),  # a covariance (FID) and an unbiased MMD (KID) need two samples
    "fid_batch": (1, None, False, False),
    "collapse_every": (0, None, False, False),
    "collapse_samples": (2, None, False, False),  # a share of distinct hashes needs at least two
    "collapse_drop": (0.0, 1.0, True, True),
    "sample_max": (1, None, False, False),
}


def range_text(key: str) -> str:
    """A key's valid range as the error line and docs/train.md state it: ">= 1", "in (0, 1]"."""
    low, high, low_open, high_open = RANGES[key]

    def number(x: float) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    if high is None:
        return f"{'>' if low_open else '>='} {number(low)}"
    return f"in {'(' if low_open else '['}{number(low)}, {number(high)}{')' if high_open else ']'}"


@dataclasses.dataclass
class TrainConfig:
    # model (the PyTorch DCGAN example's architecture)
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    image_size: int = 64
    conditional: bool = False
    label: str = "hair_color"
    # optimisation (Radford et al. 2015)
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "bce"  # a name registered in train/losses.py
    aux_weight: float = 1.0
    ema_decay: float = 0.999
    diffaugment: str = ""
    flip: bool = True
    seed: int = 0
    max_steps: int = 50000
    epochs: int = 0
    # speed switches
    autocast: bool = True
    autocast_cpu: Literal["auto", "on", "off"] | bool = "auto"  # auto: on where the CPU has native bf16
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = (
        "default"  # reduce-overhead = CUDA graphs
    )
    fused_adam: Literal["auto", "on", "off"] = "auto"
    cudnn_benchmark: bool = True
    deterministic: bool = False
    # bookkeeping
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    fid_every: int = 2000
    fid_samples: int = 2000
    fid_batch: int = 50
    collapse_every: int = 1000
    collapse_samples: int = 256
    collapse_drop: float = 0.5
    tensorboard: bool = True
    # `python -m train sample`: the most images one --n may ask for (memory is bounded at any count;
    # the file and the time are not)
    sample_max: int = 10_000

    def __post_init__(self) -> None:
        """Every number against its range: a value the types allow but the run cannot use (a negative or
        NaN learning rate, an Adam beta of 2, zero FID samples) fails here as one config line naming the key,
        not as a traceback or a silently broken run later."""
        for key, (low, high, low_open, high_open) in RANGES.items():
            value = getattr(self, key)
            above = value > low if low_open else value >= low  # False for NaN (a TrainConfig built in code)
            below = high is None or (value < high if high_open else value <= high)
            if not (above and below):
                raise ValueError(f"{key} must be {range_text(key)}, got {value!r}")
        if self.image_size not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128, got {self.image_size}")
        from train import losses
        from train.augment import POLICIES

        losses.get(self.loss)

        unknown = [p for p in self.policies() if p not in POLICIES]
        if unknown:
            raise ValueError(
                f"diffaugment: unknown policy {', '.join(unknown)}; known: {', '.join(POLICIES)}"
            )

    def policies(self) -> list[str]:
        return [p.strip() for p in self.diffaugment.split(",") if p.strip()]

    def model_shape(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in MODEL_KEYS}


def load(config: dict[str, Any]) -> TrainConfig:
    """The `[train]` table of an already-parsed config file as a checked dataclass (ConfigError otherwise).
    Command-line overrides are written into the table first, so they pass the same checks."""
    return build(TrainConfig, section(config, "train"), "[train]")
