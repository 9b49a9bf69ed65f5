"""Choosing the device and the speed switches once, so the loop itself never branches on hardware.

Every switch (autocast, channels_last, fused Adam, cudnn.benchmark, torch.compile) is a
config key that can be turned off, because each one's effect is measured separately in
bench/bench_train.py rather than assumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

import torch

from train.config import TrainConfig


@dataclasses.dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None = fp32
    use_scaler: bool  # fp16 on CUDA needs loss scaling; bf16 does not
    memory_format: torch.memory_format

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        amp = "fp32" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")
        fmt = "channels_last" if self.memory_format == torch.channels_last else "contiguous"
        return f"{self.device} {amp} {fmt}"


def pick_device(option: str, local_rank: int = 0) -> torch.device:
    """auto: CUDA when present; a missing GPU is one warning line, then CPU."""
    if option == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if option == "cuda":
        print("train: warning: --device cuda but CUDA is not available; training on CPU (slow)", file=sys.stderr)
    else:
        print("train: warning: no CUDA GPU found; training on CPU (slow)", file=sys.stderr)
    return torch.device("cpu")


def make_runtime(cfg: TrainConfig, device: torch.device) -> Runtime:
    amp_dtype = None
    use_scaler = False
    if cfg.autocast and device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            amp_dtype = torch.bfloat16
        else:
            amp_dtype, use_scaler = torch.float16, True
    if cfg.autocast_cpu and device.type == "cpu":
        # Off by default: without AVX512-BF16/AMX the CPU emulates bf16 and a step is ~20x slower.
        amp_dtype = torch.bfloat16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark and not cfg.deterministic
    if cfg.deterministic:
        # Bit-identical resume needs deterministic kernels; cuBLAS asks for this env var too.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
    memory_format = torch.channels_last if switch_on(cfg.channels_last, device) else torch.contiguous_format
    return Runtime(device=device, amp_dtype=amp_dtype, use_scaler=use_scaler, memory_format=memory_format)


def switch_on(value: str, device: torch.device) -> bool:
    """"auto" is on for every device: both switches are the usual CUDA speed-ups, and on this project's idle
    2-core CPU they measured 1.15x (channels_last) and 1.05-1.10x (fused Adam) in `make bench`. ("off" is
    there for a device where they measure slower; runs on a shared, loaded CPU once did.)"""
    return value in ("on", "auto")
