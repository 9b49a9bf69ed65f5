"""The contracts between stages, through their one module each: layout, shard, decision logs, manifest rows."""

from __future__ import annotations

import importlib.metadata
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline import atomic, decisions, shard
from pipeline.layout import Layout, rel_crop, rel_face, rel_raw
from pipeline.manifests import CropRow, FaceRow, RawImage, RowError, read_rows
from tests.helpers.cli import run_cli

# ---------------------------------------------------------------- layout


def test_raw_path_rule_is_where_the_crawler_stores(tmp_path: Path) -> None:
    """facecrop and the benchmarks find the crawler's files through the same rule."""
    from crawler import store

    data = b"image bytes"
    sha = store.sha256_hex(data)
    rel = store.put(tmp_path, sha, "jpg", data)
    assert rel == rel_raw(sha, "jpg") == f"raw/{sha[:2]}/{sha[2:4]}/{sha}.jpg"
    assert Layout(tmp_path).raw_image(sha, "jpg").read_bytes() == data


def test_layout_paths_are_under_data(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    files = [
        layout.raw_manifest,
        layout.crawl_state,
        layout.crops_manifest,
        layout.overrides_log,
        layout.facecrop_state,
        layout.rejects_page,
        layout.faces_manifest,
        layout.dedup_report,
        layout.dropped_log,
        layout.dedup_decisions_log,
        layout.dedup_state,
        layout.thumb_cache,
        layout.shard_npy,
        layout.shard_json,
        layout.cascade,
    ]
    assert len(set(files)) == len(files)
    assert all(path.is_relative_to(tmp_path) for path in files)
    assert layout.path(rel_raw("cd" * 32, "png")) == layout.raw_image("cd" * 32, "png")


# ---------------------------------------------------------------- shard


def _write(data: Path, images: np.ndarray, hair: list[str | None]) -> dict:
    return shard.write_shard(
        data,
        iter(images),
        len(images),
        images.shape[1:],
        ids=[f"id{i}" for i in range(len(images))],
        labels={"hair_color": hair},
        config={"threshold": 4},
    )


def test_shard_round_trip(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    hair = ["pink", None, "blue", "pink", None]
    meta = _write(tmp_path, images, hair)
    opened = shard.open_shard(tmp_path, 64)
    assert np.array_equal(np.asarray(opened.images), images)
    assert opened.meta == json.loads(Layout(tmp_path).shard_json.read_text()) == meta
    assert meta["version"] == shard.FORMAT_VERSION and meta["ids"] == [f"id{i}" for i in range(5)]
    assert meta["label_vocab"] == {"hair_color": ["blue", "pink"]}
    index, vocab = opened.labels("hair_color")
    assert vocab == ["blue", "pink"] and index.tolist() == [1, -1, 0, 1, -1]
    assert shard.shard_count(tmp_path) == 5


def test_shard_of_an_unknown_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    _write(tmp_path, np.zeros((2, 64, 64, 3), np.uint8), [None, None])
    sidecar = Layout(tmp_path).shard_json
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "version": shard.FORMAT_VERSION + 1}))
    with pytest.raises(
        shard.ShardError, match=f"{sidecar}: shard format version {shard.FORMAT_VERSION + 1} is unknown"
    ):
        shard.open_shard(tmp_path)
    assert shard.shard_count(tmp_path) is None
    assert shard.ShardError.exit_code == 4  # rebuilding the shard is running an earlier stage


def test_content_key_keeps_a_current_shard(tmp_path: Path) -> None:
    images = np.zeros((1, 8, 8, 3), np.uint8)
    key = shard.content_key(["id0"], ["digest"], {"hair_color": [None]}, {})
    shard.write_shard(
        tmp_path,
        iter(images),
        1,
        (8, 8, 3),
        ids=["id0"],
        labels={"hair_color": [None]},
        config={},
        content_key=key,
    )
    assert shard.is_current(tmp_path, key)
    assert not shard.is_current(tmp_path, shard.content_key(["id1"], ["digest"], {"hair_color": [None]}, {}))


# ---------------------------------------------------------------- decision logs


def test_overrides_last_row_wins_and_bad_rows_are_skipped_with_file_and_line(tmp_path: Path, caplog) -> None:
    log = Layout(tmp_path).overrides_log
    decisions.record_override(tmp_path, "a_1_2_3_4", "demote", "blurry")
    decisions.record_override(tmp_path, "b_1_2_3_4", "demote")
    with log.open("a") as fh:
        fh.write(json.dumps({"id": "a_1_2_3_4", "action": "explode"}) + "\n")  # line 3: unknown action
        fh.write(json.dumps({"action": "promote"}) + "\n")  # line 4: no id
        fh.write(json.dumps({"id": "c_1_2_3_4", "action": "demote", "reason": "../../etc"}) + "\n")  # line 5
    decisions.record_override(tmp_path, "a_1_2_3_4", "promote")
    with caplog.at_level(logging.WARNING, logger="pipeline.decisions"):
        latest = decisions.read_overrides(tmp_path)
    assert latest["a_1_2_3_4"].action == "promote" and latest["a_1_2_3_4"].reason is None
    assert latest["b_1_2_3_4"] == decisions.Decision("b_1_2_3_4", "demote", "manual", latest["b_1_2_3_4"].at)
    # the demotion stands
    assert latest["c_1_2_3_4"].action == "demote" and latest["c_1_2_3_4"].reason == "manual"
    warned = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"{log}:3: ") and "explode" in m for m in warned), warned
    assert any(m.startswith(f"{log}:4: ") and "'id'" in m for m in warned), warned
    assert any(m.startswith(f"{log}:5: ") for m in warned), warned


def test_recording_an_unsafe_reason_is_refused(tmp_path: Path) -> None:
    with pytest.raises(decisions.BadDecision, match="names a folder"):
        decisions.record_override(tmp_path, "a_1_2_3_4", "demote", "no/slashes")
    assert not Layout(tmp_path).overrides_log.exists()


def test_dedup_decisions_log_round_trip(tmp_path: Path) -> None:
    decisions.record_dedup_decision(tmp_path, "a_0_0_9_9", "split")
    decisions.record_dedup_decision(tmp_path, "b_0_0_9_9", "keep")
    decisions.record_dedup_decision(tmp_path, "a_0_0_9_9", "keep")
    latest = decisions.read_dedup_decisions(tmp_path)
    assert {k: v.action for k, v in latest.items()} == {"a_0_0_9_9": "keep", "b_0_0_9_9": "keep"}
    # appended, never rewritten
    assert len(Layout(tmp_path).dedup_decisions_log.read_text().splitlines()) == 3
    with pytest.raises(decisions.BadDecision):
        decisions.record_dedup_decision(tmp_path, "a_0_0_9_9", "promote")


# ---------------------------------------------------------------- manifest rows


def test_manifest_rows_parse_and_say_why_not(tmp_path: Path) -> None:
    sha = "f" * 64
    image = RawImage.parse({"sha256": sha.upper(), "path": "../outside.jpg", "site": "s", "meta": "x"})
    assert image.sha256 == sha and image.path == "" and image.source["meta"] == {}
    with pytest.raises(RowError, match="sha256"):
        RawImage.parse({"sha256": "nope"})
    path = Layout(tmp_path).crops_manifest
    atomic.write_jsonl(
        path,
        [
            {"id": "x_0_0_10_20", "decision": "accepted", "box": [0, 0, 10, 20], "path": rel_crop("x")},
            {"decision": "accepted"},
        ],
    )
    rows, bad = read_rows(path, CropRow.parse)
    assert [(r.id, r.accepted, r.face_area, r.is_detection) for r in rows] == [
        ("x_0_0_10_20", True, 200, True)
    ]
    assert bad == [(2, "manifest row without an id")]


def test_face_row_round_trip() -> None:
    face = FaceRow(
        id="x",
        path=rel_face("x"),
        source_sha256="f" * 64,
        source_path=None,
        cluster_id="c",
        cluster_size=2,
        duplicates=["y"],
        kept_because="larger",
        hashes={"thumb_sha256": "t"},
        hash_kind="phash",
        hash_bits=64,
        face_area=100,
        crop_side=10,
        sharpness=1.0,
        hair_color=None,
        eye_colors=None,
    )
    row = json.loads(json.dumps(face.to_row()))
    assert row["crop_id"] == "x" and FaceRow.parse(row) == face and face.thumb_sha256 == "t"


# ---------------------------------------------------------------- the console script


def test_console_version_is_the_installed_distribution() -> None:
    result = run_cli("animefaces", "--version", timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"animefaces {importlib.metadata.version('anime-face-pipeline')}"


def test_console_subcommand_is_the_stage(tmp_path: Path) -> None:
    atomic.write_jsonl(Layout(tmp_path).raw_manifest, [{"sha256": "a" * 64}])
    via_console = run_cli("animefaces summary", "--data", tmp_path, timeout=60)
    via_module = run_cli("pipeline summary", "--data", tmp_path, timeout=60)
    assert via_console.returncode == via_module.returncode == 0
    assert via_console.stdout == via_module.stdout and "images crawled      1" in via_console.stdout
    help_text = run_cli("animefaces facecrop", "--help", timeout=60)
    assert help_text.returncode == 0 and "promote" in help_text.stdout and "--cascade" in help_text.stdout
    listing = run_cli("animefaces", "--help", timeout=60).stdout
    for command in ("crawl", "facecrop", "dedup", "train", "dataset", "sample", "summary", "bench"):
        assert command in listing
