"""Helpers for the dedup tests: a runner for the real CLI and small facecrop-shaped corpora."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]


def run_dedup(data: Path, config_text: str = "", *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m dedup` as a user runs it, in a subprocess."""
    config = data.parent / f"{data.name}.toml"
    config.write_text(config_text)
    result = subprocess.run([sys.executable, "-m", "dedup", "--config", str(config), "--data", str(data), *extra],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"dedup failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def faces(testdata: Path) -> list[Path]:
    return sorted((testdata / "faces").iterdir())
