"""The dataset card, the three exports and FacesDataset, each read back with its own library.

DATA is built from the shared faces as facecrop output (two sites, a rejected crop, a person's
demotion, near duplicates), `python -m dedup` runs on it as a user runs it, and every check
compares with the shard (`pipeline.shard`) and the manifests, never with the code under test.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dedup.card import card_counts
from pipeline.layout import SHARD_NAME, Layout, rel_crop
from pipeline.shard import open_shard
from tests.helpers.cli import run_cli, start_cli
from tests.helpers.crops import run_dedup, variant, write_crop, write_crops_manifest
from tests.helpers.files import jsonl_rows

pytestmark = pytest.mark.testdata

SITES = ("getchu", "danbooru")


def build_data(data: Path, faces: list[Path], count: int = 24) -> dict:
    """facecrop-shaped DATA: `count` faces over two sites, 4 near duplicates, 1 reject, 1 demotion."""
    rows, raw = [], []
    for k, face in enumerate(faces[:count]):
        image = Image.open(face).convert("RGB")
        site = SITES[k % 2]
        extra = {
            "site": site,
            "url": f"https://{site}.example/{k}.png",
            "page_url": None,
            "meta": {"title": f"t{k}"},
            "hair_color": ("#aa0000", None, "#00aa00")[k % 3],
            "eye_colors": ["#101010", "#202020"],
        }
        if k % 4 == 1:  # as facecrop records an eye-aligned crop (align = "eyes")
            extra["align"] = {"kind": "aligned", "fallback": None, "angle": -4.5, "scale": 1.05}
        elif k % 4 == 3:
            extra["align"] = {"kind": "box", "fallback": "tilt", "angle": 33.0, "scale": None}
        row = write_crop(data, image, face.name, **extra)
        rows.append(row)
        raw.append(
            {
                "sha256": row["source_sha256"],
                "path": row["source_path"],
                "site": site,
                "url": extra["url"],
                "fetched_at": f"2026-11-{10 + k % 5:02d}T00:00:00+00:00",
            }
        )
        if k < 4:  # a re-encode of the same face from the same source image: a near duplicate
            dup = write_crop(data, variant(image, "jpeg75"), face.name + "/jpeg75", **extra)
            dup["source_sha256"] = row["source_sha256"]
            dup["id"] = row["source_sha256"][:12] + "_1_1_63_63"
            moved = rel_crop(dup["id"])
            Layout(data).path(dup["path"]).rename(Layout(data).path(moved))
            dup["path"] = moved
            rows.append(dup)
    rejected = {
        **rows[0],
        "id": rows[0]["source_sha256"][:12] + "_5_5_70_70",
        "decision": "rejected",
        "reason": "blurry",
        "auto_decision": "rejected",
        "auto_reason": "blurry",
        "path": None,
    }
    rows.append(rejected)
    Layout(data).raw_manifest.parent.mkdir(parents=True, exist_ok=True)
    Layout(data).raw_manifest.write_text("".join(json.dumps(r) + "\n" for r in raw))
    write_crops_manifest(data, rows)
    demoted = rows[-2]["id"]
    Layout(data).overrides_log.write_text(
        json.dumps({"id": demoted, "action": "demote", "reason": "manual", "at": "2026-11-20T00:00:00+00:00"})
        + "\n"
    )
    return {"rows": rows, "raw": raw, "demoted": demoted}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Path:
    data = tmp_path_factory.mktemp("export") / "data"
    build_data(data, sorted((testdata / "faces").iterdir()))
    run_dedup(data)
    return data


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built DATA (a test may change it); the config file travels with it."""
    copy = tmp_path / "data"
    shutil.copytree(built, copy)
    shutil.copy(built.parent / f"{built.name}.toml", tmp_path / "data.toml")
    return copy


def dedup(data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m dedup ARGS` on DATA with the config that travels beside it."""
    return run_cli(
        "dedup", *args, "--config", data.parent / "data.toml", "--data", data, "--no-progress", check=check
    )


def export(data: Path, fmt: str, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return dedup(data, "export", "--format", fmt, "--out", str(out), *extra, check=check)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def shard_truth(data: Path) -> tuple[list[str], np.ndarray, list[int]]:
    """Ids, pixels and label indices as the shard holds them (pipeline.shard is the one reader)."""
    opened = open_shard(data)
    if opened.meta["label_vocab"].get("hair_color"):
        labels = opened.labels("hair_color")[0].tolist()
    else:  # no face has a hair colour: every label is "none"
        labels = [-1] * opened.count
    return list(opened.meta["ids"]), np.asarray(opened.images), labels


# ---------------------------------------------------------------- the card


def test_card_is_written_with_the_shard_and_its_counts_equal_the_manifests(data: Path) -> None:
    layout = Layout(data)
    card, grid = layout.shard_card, layout.shard_samples
    assert card.is_file() and grid.is_file()
    counts = card_counts(card)
    text = card.read_text()

    meta = json.loads(layout.shard_json.read_text())
    assert (
        counts["shard"]["sha256"]
        == hashlib.sha256(layout.shard_npy.read_bytes()).hexdigest()
        == meta["sha256"]
    )
    assert meta["sha256"] in text and counts["shard"]["count"] == meta["count"]

    crops = {row["id"]: row for row in jsonl_rows(layout.crops_manifest)}
    raw = jsonl_rows(layout.raw_manifest)
    faces = jsonl_rows(layout.faces_manifest)
    dropped = jsonl_rows(layout.dropped_log)
    assert counts["crops"]["accepted"] == sum(r["decision"] == "accepted" for r in crops.values())
    assert counts["crops"]["rejected_by_reason"] == {"blurry": 1}
    for site in SITES:
        entry = counts["sources"][site]
        assert entry["images"] == sum(r["site"] == site for r in raw)
        assert entry["faces_detected"] == sum(r["site"] == site for r in crops.values())
        assert entry["in_shard"] == sum(crops[f["id"]]["site"] == site for f in faces)
        assert entry["first_fetched"] == min(r["fetched_at"] for r in raw if r["site"] == site)
    assert sum(e["in_shard"] for e in counts["sources"].values()) == len(faces) == meta["count"]
    removed = counts["duplicates_removed"]
    assert (
        removed["near_duplicate"] + removed["exact_duplicate"] + removed["same_artwork"]
        == sum(r["reason"] in ("near_duplicate", "exact_duplicate", "same_artwork") for r in dropped)
        > 0
    )
    assert counts["dropped_other"] == {"demoted": 1}
    assert counts["overrides"]["logged"] == {"demote": 1}
    kinds = Counter(
        (r.get("align") or {}).get("kind", "box")
        for r in crops.values()
        if r["decision"] == "accepted" and r["box"]
    )
    assert counts["crops"]["accepted_by_crop_kind"] == dict(kinds) and kinds["aligned"] > 0
    # The licence notes from docs/crawler.md, per source.
    assert "accept Danbooru's terms of service" in text and "do not redistribute" in text
    assert (
        "python -m dedup --config data.toml --data data" in text
        and "opencv-python" in text
        and '"threshold": 4' in text
    )
    with Image.open(grid) as opened:
        assert opened.size[0] > 64 * 4 and opened.mode == "RGB"


def test_a_no_op_rerun_leaves_the_card_untouched_and_a_change_updates_it(data: Path, testdata: Path) -> None:
    layout = Layout(data)
    before = {p: p.stat().st_mtime_ns for p in (layout.shard_card, layout.shard_samples)}
    dedup(data)
    assert {p: p.stat().st_mtime_ns for p in before} == before

    rows = jsonl_rows(layout.crops_manifest)
    extra = sorted((testdata / "faces").iterdir())[-1]
    rows.append(write_crop(data, Image.open(extra).convert("RGB"), extra.name, site="getchu"))
    write_crops_manifest(data, rows)
    dedup(data)
    counts = card_counts(layout.shard_card)
    assert counts["shard"]["count"] == json.loads(layout.shard_json.read_text())["count"]
    assert counts["shard"]["sha256"] == hashlib.sha256(layout.shard_npy.read_bytes()).hexdigest()


# ---------------------------------------------------------------- exports


def test_imagefolder_round_trips_through_datasets(data: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "imagefolder"
    export(data, "imagefolder", out)
    ids, pixels, labels = shard_truth(data)
    loaded = datasets.load_dataset(
        "imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert len(loaded) == len(ids)
    by_id = {row["id"]: row for row in loaded}
    assert sorted(by_id) == ids
    crops = {row["id"]: row for row in jsonl_rows(Layout(data).crops_manifest)}
    face_fields = set(jsonl_rows(Layout(data).faces_manifest)[0])
    for index, crop_id in enumerate(ids):
        row = by_id[crop_id]
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), pixels[index])
        assert row["label"] == labels[index] and row["shard_index"] == index
        assert row["url"] == crops[crop_id]["url"]  # any row traces back to its URL
        assert row["crop_kind"] == (crops[crop_id].get("align") or {}).get("kind", "box")
    assert face_fields <= set(loaded.column_names)  # every faces64 manifest field
    assert (out / Layout(data).shard_card.name).read_bytes() == Layout(data).shard_card.read_bytes()
    assert (out / Layout(data).shard_samples.name).is_file()

    before = mtimes(out)
    result = export(data, "imagefolder", out)
    assert mtimes(out) == before  # nothing new: nothing rewritten
    assert re.search(r"written\s+0\b", result.stderr)


def test_webdataset_shards_round_trip_and_follow_the_shard_size(data: Path, tmp_path: Path) -> None:
    import webdataset as wds

    out = tmp_path / "wds"
    export(data, "webdataset", out, "--samples-per-shard", "7")
    ids, pixels, labels = shard_truth(data)
    tars = sorted(out.glob("*.tar"))
    assert [t.name for t in tars] == [f"{k:06d}.tar" for k in range((len(ids) + 6) // 7)]
    samples = list(wds.WebDataset([str(t) for t in tars], shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in samples] == ids
    for index, sample in enumerate(samples):
        assert np.array_equal(sample["png"], pixels[index])
        assert sample["json"]["id"] == ids[index] and sample["json"]["label"] == labels[index]
        assert int(sample["cls"]) == labels[index] and sample["json"]["url"].startswith("https://")
    assert (out / Layout(data).shard_card.name).is_file()

    before = mtimes(out)
    export(data, "webdataset", out, "--samples-per-shard", "7")
    assert mtimes(out) == before

    # A bigger shard size: one tar, and the tars no longer planned are removed.
    export(data, "webdataset", out, "--samples-per-shard", "1000")
    assert sorted(t.name for t in out.glob("*.tar")) == ["000000.tar"]
    assert len(list(wds.WebDataset(str(out / "000000.tar"), shardshuffle=False))) == len(ids)


def test_parquet_round_trips_through_pyarrow_in_streaming_row_groups(data: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "parquet"
    export(data, "parquet", out, "--row-group-size", "5")
    ids, pixels, labels = shard_truth(data)
    table_file = pq.ParquetFile(out / f"{SHARD_NAME}.parquet")
    assert table_file.metadata.num_rows == len(ids)
    assert table_file.metadata.num_row_groups == (len(ids) + 4) // 5
    seen = []
    for batch in table_file.iter_batches(batch_size=5):  # streaming, one group at a time
        for row in batch.to_pylist():
            index = len(seen)
            seen.append(row["id"])
            image = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
            assert np.array_equal(image, pixels[index]) and row["label"] == labels[index]
            assert row["source_sha256"] and row["url"].startswith("https://")
    assert seen == ids
    import datasets  # the Hub's reader: the schema note makes `image` a decoded picture

    hub = datasets.load_dataset(
        "parquet",
        data_files=str(out / f"{SHARD_NAME}.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert isinstance(hub.features["image"], datasets.Image) and hub["id"] == ids
    assert np.array_equal(np.asarray(hub[2]["image"].convert("RGB")), pixels[2])
    assert (out / "README.md").read_bytes() == Layout(data).shard_card.read_bytes()
    before = mtimes(out)
    export(data, "parquet", out, "--row-group-size", "5")
    assert mtimes(out) == before


def test_a_resumed_export_finishes_only_what_is_missing(data: Path, tmp_path: Path) -> None:
    """What a kill leaves (finished files, a temp file, no final state for the rest) is finished next time."""
    out = tmp_path / "wds"
    export(data, "webdataset", out, "--samples-per-shard", "5")
    (out / "000002.tar").unlink()
    (out / ".tmp-000003.tar.half").write_bytes(b"half a tar")
    before = mtimes(out)
    result = export(data, "webdataset", out, "--samples-per-shard", "5")
    after = mtimes(out)
    assert not list(out.glob(".tmp-*"))
    changed = {name for name in after if after[name] != before.get(name)}
    assert "000002.tar" in changed and changed <= {"000002.tar", "export.json"}
    assert re.search(r"written\s+1\b", result.stderr)


def test_export_refuses_a_foreign_folder_and_a_missing_shard(data: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = export(data, "parquet", foreign, check=False)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(data.parent / "data.toml", tmp_path / "empty.toml")
    result = run_cli(
        "dedup",
        "export",
        "--format",
        "parquet",
        "--out",
        tmp_path / "x",
        "--data",
        empty,
        "--config",
        tmp_path / "empty.toml",
        timeout=120,
    )
    assert result.returncode == 4 and "make dataset" in result.stderr
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- FacesDataset


def test_faces_dataset_reads_the_shard_with_labels(data: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    from pipeline.faces_dataset import FacesDataset

    ids, pixels, labels = shard_truth(data)
    faces = FacesDataset(data)
    assert len(faces) == len(ids) and faces.ids == ids
    image, label = faces[3]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 64, 64)
    assert torch.equal(
        (image * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(pixels[3].copy())
    )
    assert label == labels[3] and faces.classes == sorted({"#aa0000", "#00aa00"})
    raw_pixels, _ = FacesDataset(data, raw=True)[5]
    assert np.array_equal(raw_pixels, pixels[5])
    assert len(pickle.dumps(faces)) < pixels.nbytes // 4  # workers get the path, not a copy of the map
    batch, batch_labels = next(iter(DataLoader(faces, batch_size=8, shuffle=False)))
    assert tuple(batch.shape) == (8, 3, 64, 64) and batch_labels.tolist() == labels[:8]
    flipped = FacesDataset(data, label=None, transform=lambda t: t.flip(-1))
    image, label = flipped[3]
    assert label == -1 and torch.equal(image, faces[3][0].flip(-1))


@pytest.mark.slow
def test_a_kill_9_mid_export_leaves_only_whole_files_and_the_rerun_finishes(
    tmp_path: Path, testdata: Path
) -> None:
    """SIGKILL while the image folder is being written: every file under its final name is whole."""
    import os
    import signal
    import time

    data = tmp_path / "data"
    faces = sorted((testdata / "faces").iterdir())
    write_crops_manifest(data, [write_crop(data, Image.open(f).convert("RGB"), f.name) for f in faces])
    run_dedup(data)  # writes tmp_path/data.toml beside DATA
    out = tmp_path / "imagefolder"
    process = start_cli(
        "dedup",
        "export",
        "--format",
        "imagefolder",
        "--out",
        out,
        "--data",
        data,
        "--config",
        tmp_path / "data.toml",
        "--no-progress",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        # Whole files only: the folder also holds the temp file being written.
        if (out / "images").is_dir() and len(list((out / "images").glob("*.png"))) >= 100:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the export finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # the final state is written last
    assert json.loads((out / "export.json").read_text())["complete"] is False
    ids, pixels, _ = shard_truth(data)
    index = {crop_id: k for k, crop_id in enumerate(ids)}
    finished = list((out / "images").glob("*.png"))
    assert 100 <= len(finished) < len(ids)
    for png in finished:  # no half file under a final name
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), pixels[index[png.stem]])
    before = {p.name: p.stat().st_mtime_ns for p in finished}
    result = export(data, "imagefolder", out)
    assert not list(out.rglob(".tmp-*"))
    assert len(list((out / "images").glob("*.png"))) == len(ids)
    assert all((out / "images" / name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert re.search(rf"unchanged\s+{len(before)}\b", result.stderr)
    from pipeline.faces_dataset import FacesDataset

    unlabelled = FacesDataset(data)  # none of these faces has a hair colour: every label is -1, no error
    assert unlabelled.classes == [] and set(unlabelled.targets.tolist()) == {-1}
