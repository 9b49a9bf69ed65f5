"""facecrop's output written by a test: crop PNGs under DATA/crops and crops/manifest.jsonl rows in
facecrop's contract, so dedup reads exactly what it reads in production; and dedup run on them.

Variants are the kinds of duplicates a crawl produces (re-encodes, rescales, 1-px re-crops,
brightness), made by the benchmark's own `variant` so the tests and bench/bench_dedup.py agree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PIL import Image

from bench.bench_dedup import accepted_crop_row, variant
from pipeline.layout import Layout, rel_crop, rel_raw
from tests.helpers.cli import run_cli
from tests.helpers.files import jsonl_rows
from tests.helpers.raw import sha256_of

__all__ = [
    "accepted_crop_row",
    "append_crops_manifest",
    "crop_id_for",
    "read_crops_manifest",
    "run_dedup",
    "variant",
    "write_crop",
    "write_crops_manifest",
]


def crop_id_for(name: str, side: int) -> tuple[str, str]:
    """(crop id, source sha256) of a whole-image square crop of side `side` from a source named `name`."""
    sha = sha256_of(name.encode())
    return f"{sha[:12]}_0_0_{side}_{side}", sha


def write_crop(data: Path, image: Image.Image, name: str, **extra) -> dict:
    """Save one crop PNG under DATA/crops and return its manifest row (not yet written)."""
    side = min(image.size)
    crop_id, sha = crop_id_for(name, side)
    path = Layout(data).path(rel_crop(crop_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return accepted_crop_row(crop_id, sha, side, rel_raw(sha, "jpg"), **extra)


def write_crops_manifest(data: Path, rows: list[dict]) -> None:
    Layout(data).crops_dir.mkdir(parents=True, exist_ok=True)
    with Layout(data).crops_manifest.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def read_crops_manifest(data: Path) -> list[dict]:
    """crops/manifest.jsonl's rows, strictly parsed."""
    return jsonl_rows(Layout(data).crops_manifest)


def append_crops_manifest(data: Path, rows: list[dict]) -> None:
    with Layout(data).crops_manifest.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def run_dedup(
    data: Path, config_text: str = "", *extra: str, check: bool = True
) -> subprocess.CompletedProcess:
    """`python -m dedup --config DATA.toml --data DATA EXTRA` with `config_text` in DATA.toml (beside DATA)."""
    config = data.parent / f"{data.name}.toml"
    config.write_text(config_text)
    return run_cli("dedup", "--config", config, "--data", data, *extra, check=check)
