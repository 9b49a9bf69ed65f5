"""A real run over the shared illustrations and non-face images, through the CLI."""

from __future__ import annotations

import csv
import hashlib

import cv2
import pytest

from pipeline.layout import Layout, rel_crop, rel_reject
from tests.helpers.cli import run_cli, run_stage
from tests.helpers.crops import read_crops_manifest

REQUIRED = {
    "id",
    "source_sha256",
    "source_path",
    "box",
    "crop_box",
    "size",
    "confidence",
    "decision",
    "reason",
    "values",
    "path",
    "likelihood",
    "hair_color",
    "eye_colors",
    "override",
}

pytestmark = pytest.mark.testdata


def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def test_finds_the_faces_the_cascade_baseline_lists(full_run, testdata):
    rows = read_crops_manifest(full_run["data"])
    sha_of = {
        f"{f.parent.name}/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest() for f in full_run["files"]
    }
    ours: dict[str, list] = {}
    for row in rows:
        if row["box"]:
            ours.setdefault(row["source_sha256"], []).append(row["box"])
    expected = found = 0
    with (testdata / "CASCADE_BASELINE.tsv").open() as fh:
        for line in csv.DictReader(fh, delimiter="\t"):
            if not line["local_file"].startswith("full/") or line["n_faces"] == "0":
                continue
            for box in line["boxes"].split(";"):
                b = [int(v) for v in box.split(",")]
                if b[2] < 80:  # the baseline used minSize 24; we detect from 64 px up (see docs)
                    continue
                expected += 1
                found += any(_iou(b, o) > 0.5 for o in ours.get(sha_of[line["local_file"]], []))
    assert expected > 30
    # Measured: every baseline box of 80 px or more is found again by the 64 px run.
    assert found == expected, f"found {found} of {expected} baseline boxes"


def test_no_accepted_crop_on_negative_images(full_run):
    negative = {
        hashlib.sha256(f.read_bytes()).hexdigest() for f in full_run["files"] if f.parent.name == "negative"
    }
    rows = read_crops_manifest(full_run["data"])
    on_negative = [r for r in rows if r["source_sha256"] in negative]
    assert on_negative, "the cascade's false boxes on negative/ should be in the manifest as rejects"
    assert [r["id"] for r in on_negative if r["decision"] == "accepted"] == []
    assert {r["reason"] for r in on_negative} == {"not_verified"}


def test_every_crop_is_a_non_empty_square_file_where_its_row_says(full_run):
    data = full_run["data"]
    rows = read_crops_manifest(data)
    assert sum(r["decision"] == "accepted" for r in rows) >= 40
    for row in rows:
        assert row.keys() >= REQUIRED, row["id"]
        tilt = f"_r{round(row['angle']) % 360}" if row["angle"] else ""  # found on a turned copy
        assert row["id"] == "{}_{}_{}_{}_{}".format(row["source_sha256"][:12], *row["box"]) + tilt
        expected = (
            rel_crop(row["id"]) if row["decision"] == "accepted" else rel_reject(row["reason"], row["id"])
        )
        assert row["path"] == expected
        image = cv2.imread(str(data / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.size > 0
        assert image.shape[0] == image.shape[1] == row["size"] == row["crop_box"][2] == row["crop_box"][3]
        assert (row["reason"] is None) == (row["decision"] == "accepted")
        assert row["values"]["sharpness"] > 0
    pngs = {p.relative_to(data).as_posix() for p in Layout(data).crops_dir.glob("*.png")}
    pngs |= {p.relative_to(data).as_posix() for p in Layout(data).rejects_dir.glob("*/*.png")}
    assert pngs == {r["path"] for r in rows}


def test_collage_is_rejected_as_crowded_and_manga_as_low_color(full_run):
    by_title = {}
    for row in read_crops_manifest(full_run["data"]):
        by_title.setdefault(row["meta"]["title"], []).append(row)
    assert {r["reason"] for r in by_title["mckinsey666__test.jpg"]} == {"crowded"}
    assert {r["reason"] for r in by_title["mit_en__Wikipe-tan_manga_page1.jpg"]} == {"low_color"}
    megumin = by_title["bizarre__megumin.png"]
    assert [r["decision"] for r in megumin] == ["accepted"]
    assert megumin[0]["likelihood"] > 0.9 and megumin[0]["hair_color"].startswith("#")
    assert len(megumin[0]["eye_colors"]) == 2


def test_rerun_with_nothing_new_changes_nothing(full_run, clean_full_manifest, cascade_path):
    data = full_run["data"]
    result = run_stage("facecrop", data, full_run["config"], cascade=cascade_path, check=True)
    assert "images processed now               0" in result.stderr
    assert Layout(data).crops_manifest.read_bytes() == clean_full_manifest


def test_rejects_listing_counts_per_reason(full_run, cascade_path):
    data = full_run["data"]
    rows = read_crops_manifest(data)
    out = run_cli(
        "facecrop",
        "rejects",
        "--data",
        str(data),
        "--config",
        str(full_run["config"]),
        "--cascade",
        cascade_path,
        check=True,
    ).stdout
    crowded = sum(r["reason"] == "crowded" for r in rows)
    assert "crowded" in out and f" {crowded} " in out
    only = run_cli(
        "facecrop",
        "rejects",
        "--reason",
        "not_verified",
        "--data",
        str(data),
        "--config",
        str(full_run["config"]),
        "--cascade",
        cascade_path,
        check=True,
    ).stdout
    ids = [r["id"] for r in rows if r["reason"] == "not_verified"]
    assert all(i in only for i in ids)
    assert not any(r["id"] in only for r in rows if r["reason"] == "crowded")
