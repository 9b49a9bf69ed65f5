"""Inputs for the trainer's tests: small shards in the dedup stage's format, written per test.

The model in these tests is the DCGAN shape at widths 8 so that a step takes milliseconds;
the code path is the one a full-size run takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.shard import write_shard


@pytest.fixture
def random_shard(tmp_path: Path) -> Path:
    """48 random 64x64 faces with hair-colour labels (some null); returns the data dir."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 64, 64, 3), dtype=np.uint8)
    colors = ["blue", "red", None, "blonde"]
    write_shard(tmp_path / "data", images, hair_color=[colors[i % 4] for i in range(48)])
    return tmp_path / "data"


@pytest.fixture(scope="session")
def real_faces(testdata: Path) -> np.ndarray:
    """64 real anime faces from the shared test data, resized to 64x64 the way a shard holds them."""
    files = sorted((testdata / "faces").iterdir())[:64]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BICUBIC)) for f in files])
