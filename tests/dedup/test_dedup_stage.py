"""The stage end to end through `python -m dedup`, on real anime faces written as facecrop output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.layout import Layout, rel_crop, rel_reject
from tests.helpers.crops import append_crops_manifest, run_dedup, variant, write_crop, write_crops_manifest
from tests.helpers.files import jsonl_rows

pytestmark = pytest.mark.testdata


def kept_ids(data: Path) -> list[str]:
    return [row["id"] for row in jsonl_rows(Layout(data).faces_manifest)]


def dropped(data: Path) -> dict[str, dict]:
    return {row["id"]: row for row in jsonl_rows(Layout(data).dropped_log)}


def test_exact_duplicates_with_different_bytes_collapse(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    image = Image.open(faces[0]).convert("RGB")
    a = write_crop(data, image, "a")
    b = write_crop(data, image, "b")
    # Same pixels, different file bytes: another compression level and a text chunk.
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "re-saved")
    image.save(data / b["path"], compress_level=1, pnginfo=info)
    assert (data / a["path"]).read_bytes() != (data / b["path"]).read_bytes()
    other = write_crop(data, Image.open(faces[1]).convert("RGB"), "c")
    write_crops_manifest(data, [a, b, other])
    run_dedup(data)
    kept = kept_ids(data)
    assert len(kept) == 2 and other["id"] in kept
    loser = ({a["id"], b["id"]} - set(kept)).pop()
    assert dropped(data)[loser]["reason"] == "exact_duplicate"


def test_flat_and_two_tone_images_do_not_merge(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = []
    colours = [(255, 0, 0), (0, 0, 255), (250, 250, 250), (20, 20, 20), (0, 160, 0)]
    for k, colour in enumerate(colours):
        rows.append(write_crop(data, Image.new("RGB", (96, 96), colour), f"flat{k}"))
    for k, split in enumerate((20, 48, 70)):
        two = np.zeros((96, 96, 3), np.uint8)
        two[:, :split] = (240, 200, 180)
        two[:, split:] = (30 + k * 40, 30, 90)
        rows.append(write_crop(data, Image.fromarray(two), f"two{k}"))
    # A flat image and its pixel-identical copy still merge: exact duplicates are always caught.
    rows.append(write_crop(data, Image.new("RGB", (96, 96), colours[0]), "flat0-copy"))
    write_crops_manifest(data, rows)
    result = run_dedup(data)
    kept = kept_ids(data)
    assert len(kept) == len(rows) - 1, result.stderr
    gone = set(r["id"] for r in rows) - set(kept)
    assert [dropped(data)[g]["reason"] for g in gone] == ["exact_duplicate"]
    assert "low-information contents" in result.stderr


def test_near_duplicates_in_neardups_tsv_are_found(tmp_path: Path, testdata: Path) -> None:
    """The NEARDUPS pairs that are the same artwork re-encoded/resized, used whole as crops."""
    data = tmp_path / "data"
    pairs = []
    for line in (testdata / "NEARDUPS.tsv").read_text().splitlines()[1:]:
        a, b, _, note = line.split("\t")
        if "different encode/size" in note:
            pairs.append((a, b))
    assert len(pairs) >= 3
    rows, ids = [], {}
    for a, b in pairs:
        for name in (a, b):
            row = write_crop(
                data,
                Image.open(testdata / name).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS),
                name,
            )
            ids[name] = row["id"]
            rows.append(row)
    # Unrelated illustrations alongside, which must stay.
    others = sorted(
        p for p in (testdata / "full").iterdir() if not any(p.name in x for pair in pairs for x in pair)
    )[:8]
    for p in others:
        rows.append(
            write_crop(
                data, Image.open(p).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS), p.name
            )
        )
    write_crops_manifest(data, rows)
    run_dedup(data)
    clusters = {
        row["id"]: set([row["id"], *row["duplicates"]]) for row in jsonl_rows(Layout(data).faces_manifest)
    }
    for a, b in pairs:
        assert any({ids[a], ids[b]} <= members for members in clusters.values()), (a, b)
    assert len(clusters) == len(pairs) + len(others)


def test_keep_best_picks_the_larger_source_face(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    image = Image.open(next(f for f in faces if "mlds96" in f.name)).convert("RGB")
    small = write_crop(data, image.resize((64, 64), Image.Resampling.LANCZOS), "small")
    small["box"] = [10, 10, 64, 64]
    large = write_crop(data, variant(image, "jpeg75"), "large")
    large["box"] = [10, 10, 96, 96]
    write_crops_manifest(data, [small, large])
    run_dedup(data)
    (row,) = jsonl_rows(Layout(data).faces_manifest)
    assert row["id"] == large["id"] and row["duplicates"] == [small["id"]]
    assert "larger source face" in row["kept_because"]
    # Deterministic: the same inputs listed in the other order keep the same face.
    write_crops_manifest(data, [large, small])
    run_dedup(data)
    assert kept_ids(data) == [large["id"]]


def test_demoted_crop_stays_out_even_when_it_was_kept_before(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    image = Image.open(faces[3]).convert("RGB")
    best = write_crop(data, image, "best", box=[0, 0, 200, 200])
    twin = write_crop(data, variant(image, "jpeg95"), "twin", box=[0, 0, 100, 100])
    other = write_crop(data, Image.open(faces[4]).convert("RGB"), "other")
    write_crops_manifest(data, [best, twin, other])
    run_dedup(data)
    assert best["id"] in kept_ids(data) and twin["id"] not in kept_ids(data)

    with Layout(data).overrides_log.open("a") as fh:
        fh.write(
            json.dumps(
                {"id": best["id"], "action": "demote", "reason": "bad crop", "at": "2026-01-01T00:00:00Z"}
            )
            + "\n"
        )
    run_dedup(data)
    kept = kept_ids(data)
    assert best["id"] not in kept and twin["id"] in kept  # its duplicate takes over
    assert not Layout(data).face(best["id"]).exists()
    meta = json.loads(Layout(data).shard_json.read_text())
    assert best["id"] not in meta["ids"]
    assert dropped(data)[best["id"]]["reason"] == "demoted"

    # facecrop re-running and listing it as accepted again does not bring it back.
    append_crops_manifest(data, [best])
    run_dedup(data)
    assert best["id"] not in kept_ids(data)


def test_shard_lines_up_with_pngs_and_manifest(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    rows = []
    colours = ["blue", "pink", None]
    for k, path in enumerate(faces[:12:2] + faces[-6:]):
        rows.append(write_crop(data, Image.open(path).convert("RGB"), path.name, hair_color=colours[k % 3]))
    write_crops_manifest(data, rows)
    run_dedup(data)
    array = np.load(Layout(data).shard_npy, mmap_mode="r")
    meta = json.loads(Layout(data).shard_json.read_text())
    manifest = {row["id"]: row for row in jsonl_rows(Layout(data).faces_manifest)}
    assert array.dtype == np.uint8 and list(array.shape) == meta["shape"] == [meta["count"], 64, 64, 3]
    assert meta["version"] == 1 and meta["dtype"] == "uint8" and set(meta["ids"]) == set(manifest)
    from pipeline.digest import file_digest
    from pipeline.shard import open_shard

    assert meta["sha256"] == file_digest(Layout(data).shard_npy)
    open_shard(data, 64)
    for index, crop_id in enumerate(meta["ids"]):
        png = np.asarray(Image.open(Layout(data).face(crop_id)).convert("RGB"))
        assert png.shape == (64, 64, 3)
        assert np.array_equal(array[index], png)
        assert meta["labels"]["hair_color"][index] == manifest[crop_id]["hair_color"]
    assert meta["label_vocab"] == {"hair_color": ["blue", "pink"]}
    assert sorted(p.stem for p in Layout(data).faces_dir.glob("*.png")) == sorted(manifest)
    assert meta["config"]["threshold"] == 4


def test_incremental_rerun_hashes_only_new_faces_and_keeps_the_shard(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    first = [write_crop(data, Image.open(p).convert("RGB"), p.name) for p in faces[:40]]
    write_crops_manifest(data, first)
    out = run_dedup(data).stderr
    assert "hashed this run                 40" in out
    npy = Layout(data).shard_npy
    stamp = npy.stat().st_mtime_ns

    out = run_dedup(data).stderr  # nothing new: nothing hashed, shard untouched
    assert "hashed this run                 0" in out and "shard                           unchanged" in out
    assert npy.stat().st_mtime_ns == stamp

    duplicate = write_crop(data, variant(Image.open(faces[5]).convert("RGB"), "jpeg50"), "dup-of-5")
    fresh = [write_crop(data, Image.open(p).convert("RGB"), p.name) for p in faces[40:45]]
    append_crops_manifest(data, [duplicate, *fresh])
    out = run_dedup(data).stderr
    assert "hashed this run                 6" in out and "contents searched this run      6" in out
    kept = kept_ids(data)
    assert len(kept) == len(set(kept)) == 45
    assert duplicate["id"] in dropped(data) and dropped(data)[duplicate["id"]]["reason"] == "near_duplicate"
    assert json.loads(Layout(data).shard_json.read_text())["count"] == 45


def test_no_accepted_crops_is_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_crops_manifest(
        data, [{"id": "x_0_0_1_1", "decision": "rejected", "path": rel_reject("blurry", "x_0_0_1_1")}]
    )
    result = run_dedup(data, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"dedup: no accepted crops in {Layout(data).crops_manifest}: run facecrop first, or see make rejects"
    ]


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_dedup(data, "[dedup]\nthreshhold = 3\n", check=False)
    assert result.returncode == 2 and "threshhold" in result.stderr


def test_bad_crops_are_recorded_not_fatal(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    good = write_crop(data, Image.open(faces[0]).convert("RGB"), "good")
    broken = write_crop(data, Image.open(faces[1]).convert("RGB"), "broken")
    (data / broken["path"]).write_bytes((data / broken["path"]).read_bytes()[:100])
    tiny = write_crop(data, Image.open(faces[2]).convert("RGB").resize((20, 20)), "tiny")
    missing = dict(good, id="ffffffffffff_0_0_64_64", path=rel_crop("ffffffffffff_0_0_64_64"))
    write_crops_manifest(data, [good, broken, tiny, missing])
    run_dedup(data)
    assert kept_ids(data) == [good["id"]]
    reasons = {k: v["reason"] for k, v in dropped(data).items()}
    assert reasons == {broken["id"]: "unreadable", tiny["id"]: "too_small", missing["id"]: "missing"}


def test_all_crops_unusable_is_an_error_with_the_reasons_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    row = write_crop(data, Image.new("RGB", (16, 16), (10, 20, 30)), "tiny")
    write_crops_manifest(data, [row])
    result = run_dedup(data, check=False)
    assert result.returncode == 1 and "none of the accepted crops is usable" in result.stderr
    assert dropped(data)[row["id"]]["reason"] == "too_small"
    assert json.loads(Layout(data).shard_json.read_text())["count"] == 0


def test_same_layout_in_different_colours_is_not_merged(tmp_path: Path, faces) -> None:
    """pHash is grayscale: a recoloured face (same luma, other chroma) hashes alike; the colour guard keeps both."""
    import cv2

    from pipeline.phash import hamming, phash64

    data = tmp_path / "data"
    image = np.asarray(Image.open(faces[7]).convert("RGB"))
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycc[:, :, 1:] = 255 - ycc[:, :, 1:]
    recoloured = Image.fromarray(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB))
    assert hamming(phash64(Image.fromarray(image)), phash64(recoloured)) <= 4
    rows = [write_crop(data, Image.fromarray(image), "a"), write_crop(data, recoloured, "b")]
    write_crops_manifest(data, rows)
    run_dedup(data)
    assert len(kept_ids(data)) == 2
    out = run_dedup(data, "[dedup]\nmax_colour_distance = -1\n").stderr  # guard off: they merge
    assert "re-searched (settings changed)  yes" in out and "hashed this run                 0" in out
    assert len(kept_ids(data)) == 1
