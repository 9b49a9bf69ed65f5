"""The environment a benchmark's child process runs in: this checkout first on PYTHONPATH, and whatever
was already there (wheels placed with `pip install --target` on a bare GPU machine) after it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
