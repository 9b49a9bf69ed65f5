"""Choosing the device and the speed switches once, so the loop itself never branches on hardware.

Every switch (autocast, channels_last, fused Adam, cudnn.benchmark, torch.compile) is a
config key that can be turned off, because each one's effect is measured separately in
bench/bench_train.py rather than assumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path

import torch

from train.config import TrainConfig

log = logging.getLogger("train")

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 features that make bf16 matmuls and convolutions native. Without them PyTorch emulates bf16 and
a DCGAN step on the CPU is ~20x slower than fp32 (measured on an AVX2 EPYC); with them it is faster."""


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

    cpu_bf16: str = ""  # why CPU autocast is on or off, for the start line and the bench

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
        log.warning("warning: --device cuda but CUDA is not available; training on CPU (slow)")
    else:
        log.warning("warning: no CUDA GPU found; training on CPU (slow)")
    return torch.device("cpu")


def cpu_bf16_features() -> list[str]:
    """The native-bf16 features this CPU reports: the kernel's /proc/cpuinfo flags on Linux, else the
    probe PyTorch's cpuinfo library runs (macOS, Windows). Chosen by what the machine says, never by a
    measurement on one machine."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if text:
        return features_in_cpuinfo(text)
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    return [flag for flag, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)()]


def features_in_cpuinfo(text: str) -> list[str]:
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def cpu_autocast(setting: str | bool) -> tuple[bool, str]:
    """Whether to run bf16 autocast on the CPU, and the reason in words (logged at start)."""
    if setting in (True, "on"):
        return True, "bf16 autocast on CPU: on (autocast_cpu = on)"
    if setting in (False, "off"):
        return False, "bf16 autocast on CPU: off (autocast_cpu = off)"
    found = cpu_bf16_features()
    if found:
        return True, f"bf16 autocast on CPU: on (auto: the CPU reports {', '.join(found)})"
    return False, (
        "bf16 autocast on CPU: off (auto: the CPU reports no avx512_bf16/amx_bf16, so bf16 would be "
        "emulated, ~20x slower)"
    )


def make_runtime(cfg: TrainConfig, device: torch.device) -> Runtime:
    amp_dtype = None
    use_scaler = False
    if cfg.autocast and device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            amp_dtype = torch.bfloat16
        else:
            amp_dtype, use_scaler = torch.float16, True
    cpu_bf16 = ""
    if device.type == "cpu":
        on, cpu_bf16 = cpu_autocast(cfg.autocast_cpu)
        if on:
            amp_dtype = torch.bfloat16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark and not cfg.deterministic
    if cfg.deterministic:
        # Bit-identical resume needs deterministic kernels; cuBLAS asks for this env var too.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
    memory_format = torch.channels_last if switch_on(cfg.channels_last, device) else torch.contiguous_format
    return Runtime(
        device=device,
        amp_dtype=amp_dtype,
        use_scaler=use_scaler,
        memory_format=memory_format,
        cpu_bf16=cpu_bf16,
    )


def switch_on(value: str, device: torch.device) -> bool:
    """ "auto" is on for every device: both switches are the usual CUDA speed-ups, and on this project's idle
    2-core CPU they measured 1.15x (channels_last) and 1.05-1.10x (fused Adam) in `make bench`. ("off" is
    there for a device where they measure slower; runs on a shared, loaded CPU once did.)"""
    return value in ("on", "auto")
