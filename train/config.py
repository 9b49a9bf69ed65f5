"""The `[train]` section of dataset.toml as a dataclass; every default here is documented in README.md, "train".

Model-shape keys (nz, ngf, ndf, image_size, conditional) are stored in every checkpoint,
so a resumed run or `sample` rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.config import build, section

MODEL_KEYS = ("nz", "ngf", "ndf", "image_size", "conditional", "label")


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
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"  # reduce-overhead = CUDA graphs
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

    def __post_init__(self) -> None:
        positive = ("nz", "ngf", "ndf", "batch_size", "log_every", "fid_batch")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        non_negative = ("max_steps", "epochs", "sample_every", "checkpoint_every", "fid_every", "collapse_every",
                        "fid_samples", "collapse_samples")
        for key in non_negative:
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.image_size not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128, got {self.image_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.collapse_drop < 1.0:
            raise ValueError(f"collapse_drop must be in (0, 1), got {self.collapse_drop}")
        from train import losses
        from train.augment import POLICIES

        losses.get(self.loss)

        unknown = [p for p in self.policies() if p not in POLICIES]
        if unknown:
            raise ValueError(f"diffaugment: unknown policy {', '.join(unknown)}; known: {', '.join(POLICIES)}")

    def policies(self) -> list[str]:
        return [p.strip() for p in self.diffaugment.split(",") if p.strip()]

    def model_shape(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in MODEL_KEYS}


def load_train_config(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build the section strictly, then apply CLI overrides (which pass through the same checks)."""
    table = section(config, "train")
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build(TrainConfig, table, "[train]")


