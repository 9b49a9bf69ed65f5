"""The CPU speed path follows what the CPU reports, losses are a registry, short CPU runs end promptly."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.atomic import read_jsonl
from pipeline.config import build
from pipeline.errors import ConfigError
from pipeline.layout import RunLayout
from tests.helpers.train import TINY, run_train, train_args, write_train_config
from train import distributed, losses, runtime
from train.config import TrainConfig
from train.loop import Trainer
from train.shard import open_shard

AVX2_ONLY = (
    "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n"
)
SAPPHIRE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def _tiny() -> TrainConfig:
    return TrainConfig(**{k: v for k, v in TINY.items()})


def test_cpuinfo_flags_are_read_per_feature():
    assert runtime.features_in_cpuinfo(AVX2_ONLY) == []
    assert runtime.features_in_cpuinfo(SAPPHIRE) == ["avx512_bf16", "amx_bf16"]


@pytest.mark.parametrize(("reported", "dtype"), [([], None), (["amx_bf16"], torch.bfloat16)])
def test_auto_autocast_follows_the_reported_features(monkeypatch, random_shard, tmp_path, reported, dtype):
    """Only the detection is mocked: the runtime it picks then trains a real step."""
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: reported)
    cfg = _tiny()
    assert cfg.autocast_cpu == "auto"
    rt = runtime.make_runtime(cfg, torch.device("cpu"))
    assert rt.amp_dtype == dtype
    assert ("on (auto" if reported else "off (auto: the CPU reports no avx512_bf16/amx_bf16") in rt.cpu_bf16
    trainer = Trainer(cfg, open_shard(random_shard), rt, distributed.Dist(), tmp_path / "run", progress=False)
    with rt.autocast():
        out = trainer.g_fwd(trainer.fixed_z[:2], None)
    assert out.dtype == (dtype or torch.float32)
    values = trainer.train_step()
    assert torch.isfinite(values["loss_d"]) and trainer.step == 1


def test_explicit_settings_override_detection(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: ["amx_bf16"])
    off = dataclasses.replace(_tiny(), autocast_cpu="off")
    assert runtime.make_runtime(off, torch.device("cpu")).amp_dtype is None
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: [])
    on = build(TrainConfig, {"autocast_cpu": True}, "[train]")  # the old boolean spelling still works
    assert runtime.make_runtime(on, torch.device("cpu")).amp_dtype == torch.bfloat16


def test_a_loss_is_one_registered_function(monkeypatch):
    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))

    @losses.loss("least_squares")
    def least_squares(logits: torch.Tensor, role: losses.Role) -> torch.Tensor:
        target = 0.0 if role == "fake" else 1.0
        return ((logits - target) ** 2).mean()

    cfg = build(TrainConfig, {"loss": "least_squares"}, "[train]")
    assert losses.get(cfg.loss)(torch.zeros(4), "real") == 1.0
    with pytest.raises(ConfigError, match="bce, hinge, least_squares"):
        build(TrainConfig, {"loss": "wasserstein"}, "[train]")


def test_short_cpu_run_skips_the_final_fid_says_how_and_fid_scores_it_later(tmp_path, random_shard):
    cfg = write_train_config(tmp_path / "c.toml", fid_every=100, fid_samples=4, fid_batch=4)
    args = train_args(cfg, random_shard, tmp_path / "runs", run="short", progress=False)
    first = run_train([*args, "--max-steps", "2"], tmp_path, check=True)
    assert "skipping the final FID" in first.stderr and "add --fid" in first.stderr
    assert not any("fid" in row for row in read_jsonl(RunLayout.of(tmp_path / "runs", "short").metrics))
    for phase in ("training", "sampling", "checkpoints", "after the last step"):
        assert phase in first.stderr  # where the time went

    second = run_train([*args, "--max-steps", "4", "--fid"], tmp_path, check=True)
    last = read_jsonl(RunLayout.of(tmp_path / "runs", "short").metrics)[-1]
    assert last["step"] == 4 and "FID over 4 samples vs 4 reference images" in last["fid_protocol"]
    # its own time line
    assert [line for line in second.stderr.splitlines() if line.strip().startswith("FID ")]

    # finished: --fid scores last.pt
    done = run_train([*args, "--max-steps", "4", "--fid"], tmp_path, check=True)
    assert "FID of" in done.stderr and "at step 4" in done.stderr
