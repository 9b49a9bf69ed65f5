"""Fixtures for the dedup tests; helpers live in dedup_support.py (a name no other stage's tests use)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def faces(testdata: Path) -> list[Path]:
    return sorted((testdata / "faces").iterdir())
