"""-q, -v and --no-progress mean the same on every stage: they change the messages, never the work or the summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline import atomic
from pipeline.layout import Layout, rel_crop
from tests.helpers.cli import run_cli


def _crops(data: Path, count: int) -> None:
    layout = Layout(data)
    layout.crops_dir.mkdir(parents=True)
    rows = []
    for k in range(count):
        crop_id = f"{k:012x}_0_0_96_96"
        pixels = np.random.default_rng(k).integers(0, 255, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(layout.path(rel_crop(crop_id)))
        rows.append(
            {
                "id": crop_id,
                "source_sha256": f"{k:064x}",
                "box": [0, 0, 96, 96],
                "size": 96,
                "decision": "accepted",
                "reason": None,
                "path": rel_crop(crop_id),
                "override": None,
            }
        )
    atomic.write_jsonl(layout.crops_manifest, rows)


def _dedup(data: Path, *flags: str) -> subprocess.CompletedProcess:
    config = data.parent / "empty.toml"
    config.write_text("")
    return run_cli("dedup", "--config", config, "--data", data, *flags)


def test_quiet_verbose_and_no_progress(tmp_path: Path) -> None:
    runs = {}
    for name, flags in (
        ("default", ()),
        ("quiet", ("-q",)),
        ("bars_off", ("--no-progress",)),
        ("verbose", ("-v",)),
    ):
        data = tmp_path / name / "data"  # a fresh DATA each, so every run does the same work
        _crops(data, 3)
        runs[name] = result = _dedup(data, *flags)
        assert result.returncode == 0, result.stderr
        assert "== dedup ==" in result.stderr and "kept faces                      3" in result.stderr
        assert "shard                           rebuilt" in result.stderr
        info = f"dedup: 3 faces in {Layout(data).faces_dir}"
        assert (info in result.stderr) == (name != "quiet"), result.stderr
    default, quiet, bars_off = runs["default"], runs["quiet"], runs["bars_off"]
    assert "dedup: settings: DedupConfig(" in runs["verbose"].stderr
    assert "DedupConfig(" not in default.stderr
    assert "dedup: shard" in default.stderr  # the tqdm bar
    assert "dedup: shard" not in bars_off.stderr and "dedup: shard" not in quiet.stderr
