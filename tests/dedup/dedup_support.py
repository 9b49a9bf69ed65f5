"""Building facecrop-shaped inputs for the dedup tests and benchmark from the shared faces.

Faces are written as `crops/<id>.png` plus a `crops/manifest.jsonl` row in facecrop's
contract, so the stage under test reads exactly what it reads in production. Variants are
the kinds of duplicates a crawl produces: re-encodes, rescales, 1-px re-crops, brightness.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from bench.bench_dedup import accepted_crop_row, variant  # noqa: F401  (the same crops as the benchmark)
from pipeline.layout import Layout, rel_crop

REPO = Path(__file__).resolve().parents[2]


def crop_row(crop_id: str, source_sha: str, side: int, **extra) -> dict:
    return accepted_crop_row(crop_id, source_sha, side, f"raw/{source_sha}.jpg", **extra)


def make_id(name: str, side: int) -> str:
    sha = hashlib.sha256(name.encode()).hexdigest()
    return f"{sha[:12]}_0_0_{side}_{side}", sha


def write_crop(data: Path, image: Image.Image, name: str, **extra) -> dict:
    """Save one crop PNG under DATA/crops and return its manifest row (not yet written)."""
    side = min(image.size)
    crop_id, sha = make_id(name, side)
    path = Layout(data).path(rel_crop(crop_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return crop_row(crop_id, sha, side, **extra)


def write_manifest(data: Path, rows: list[dict]) -> None:
    Layout(data).crops_dir.mkdir(parents=True, exist_ok=True)
    with Layout(data).crops_manifest.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def append_manifest(data: Path, rows: list[dict]) -> None:
    with Layout(data).crops_manifest.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def run_dedup(
    data: Path, config_text: str = "", *extra: str, check: bool = True
) -> subprocess.CompletedProcess:
    """`python -m dedup` as a user runs it, in a subprocess."""
    config = data.parent / f"{data.name}.toml"
    config.write_text(config_text)
    result = subprocess.run(
        [sys.executable, "-m", "dedup", "--config", str(config), "--data", str(data), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dedup failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
