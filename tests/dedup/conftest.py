"""Fixtures for the dedup tests; their helpers are tests/helpers/crops.py's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def faces(testdata: Path) -> list[Path]:
    return sorted((testdata / "faces").iterdir())
