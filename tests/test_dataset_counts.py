"""`python -m pipeline summary` reports what the stages' manifests say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.layout import Layout, rel_face
from pipeline.manifests import FaceRow
from pipeline.shard import write_shard
from tests.helpers.cli import run_cli


def test_summary_counts_come_from_the_manifests(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    atomic.write_jsonl(layout.raw_manifest, [{"sha256": "a" * 64}, {"sha256": "b" * 64}])
    atomic.write_jsonl(
        layout.crops_manifest,
        [
            {
                "id": "aaa_1",
                "source_sha256": "a" * 64,
                "box": [0, 0, 80, 80],
                "decision": "accepted",
                "reason": None,
            },
            {
                "id": "aaa_2",
                "source_sha256": "a" * 64,
                "box": [9, 9, 80, 80],
                "decision": "accepted",
                "reason": None,
            },
            {
                "id": "aaa_3",
                "source_sha256": "a" * 64,
                "box": [5, 5, 30, 30],
                "decision": "rejected",
                "reason": "too_small",
            },
            {
                "id": "bbb_image",
                "source_sha256": "b" * 64,
                "box": None,
                "decision": "rejected",
                "reason": "decode_error",
            },
        ],
    )
    face = FaceRow(
        id="aaa_1",
        path=rel_face("aaa_1"),
        source_sha256="a" * 64,
        source_path=None,
        cluster_id="c1",
        cluster_size=2,
        duplicates=["aaa_2"],
        kept_because="larger source face",
        hashes={},
        hash_kind="phash",
        hash_bits=64,
        face_area=6400,
        crop_side=120,
        sharpness=300.0,
        hair_color=None,
        eye_colors=None,
    )
    atomic.write_jsonl(layout.faces_manifest, [face.to_row()])
    write_shard(
        tmp_path,
        iter([np.zeros((64, 64, 3), np.uint8)]),
        1,
        (64, 64, 3),
        ids=["aaa_1"],
        labels={"hair_color": [None]},
        config={},
    )

    out = run_cli("pipeline summary", "--data", tmp_path, check=True, timeout=60).stdout
    lines = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in out.splitlines()
        if re.search(r"\S\s{2,}\S", line)
    )
    assert lines["images crawled"] == "2"
    assert lines["faces found"] == "3"
    assert lines["accepted"] == "2"
    assert lines["rejected"] == "2"
    assert lines["too_small"] == "1" and lines["decode_error"] == "1"
    assert lines["duplicates removed"] == "1"
    assert lines["faces in the shard"] == "1"
    assert json.loads(layout.shard_json.read_text())["count"] == 1


def test_summary_without_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("pipeline summary", "--data", tmp_path / "absent", timeout=60)
    assert result.returncode == 4
    assert (
        result.stderr.strip()
        == f"pipeline: no data directory at {tmp_path / 'absent'}; run `make dataset` first"
    )
