"""Bad and awkward inputs: each becomes a recorded reason or a correct crop, never a crash."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facecrop import geometry
from facecrop.config import Thresholds
from pipeline.layout import Layout
from tests.helpers.cli import run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.crops import read_crops_manifest
from tests.helpers.raw import add_raw, write_raw_manifest

pytestmark = pytest.mark.testdata


def _baseline_box(testdata, name):
    with (testdata / "CASCADE_BASELINE.tsv").open() as fh:
        for line in csv.DictReader(fh, delimiter="\t"):
            if line["local_file"] == name:
                return [int(v) for v in line["boxes"].split(";")[0].split(",")]
    raise KeyError(name)


def _png(image_bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image_bgr)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory, testdata, cascade_path):
    data = tmp_path_factory.mktemp("edges") / "data"
    megumin_path = testdata / "full" / "bizarre__megumin.png"
    megumin = cv2.imread(str(megumin_path), cv2.IMREAD_COLOR)
    x, y, w, h = _baseline_box(testdata, "full/bizarre__megumin.png")
    cases = {}
    # The face's top edge 2 px below the image's top edge: the crop square must reach above it.
    top = megumin[y - 2 :, :]
    cases["top_edge"] = add_raw(data, _png(top), "png")
    gray = io.BytesIO()
    Image.open(megumin_path).convert("L").save(gray, "PNG")
    cases["gray"] = add_raw(data, gray.getvalue(), "png")
    cases["garbage"] = add_raw(data, b"this is not an image, just text served as a jpeg\n" * 40, "jpg")
    jpeg = (testdata / "full" / "waifu2x__miku_noisy.jpg").read_bytes()
    cases["truncated"] = add_raw(data, jpeg[: len(jpeg) // 2], "jpg")
    cases["empty"] = add_raw(data, b"", "png")
    one = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(one, "PNG")
    cases["one_pixel"] = add_raw(data, one.getvalue(), "png")
    # A 20-megapixel scan with the face scaled up 3x in one corner: found, cropped at source resolution.
    huge = np.full((4000, 5000, 3), 235, np.uint8)
    face = cv2.resize(megumin, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    huge[2000 : 2000 + face.shape[0], 3000 : 3000 + face.shape[1]] = face[:2000, :2000]
    cases["huge"] = add_raw(data, _png(huge), "png")
    missing = add_raw(data, b"will be deleted", "jpg")
    (data / missing["path"]).unlink()
    cases["missing"] = missing
    cases["escaping"] = dict(add_raw(data, b"x", "jpg"), path="../../etc/passwd")
    rows = list(cases.values()) + [{"path": "raw/no-sha.jpg", "url": "https://example.org/x"}]
    write_raw_manifest(data, rows)
    config = write_facecrop_config(data.parent / "dataset.toml", "workers = 2\n")
    result = run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    by_source = {}
    for row in read_crops_manifest(data):
        by_source.setdefault(row["source_sha256"], []).append(row)
    return {
        "data": data,
        "config": config,
        "cases": {name: by_source.get(raw["sha256"], []) for name, raw in cases.items()},
        "raw": cases,
        "stderr": result.stderr,
        "box": (x, y, w, h),
    }


def test_box_at_top_edge_gives_a_full_square_crop_or_a_clipped_reject(edge_run):
    rows = edge_run["cases"]["top_edge"]
    assert len(rows) == 1
    row = rows[0]
    assert row["box"][1] <= 10
    padding = row["values"]["padding"]
    assert padding > 0
    assert row["crop_box"][1] < 0  # the square reaches above the image ...
    crop = cv2.imread(str(edge_run["data"] / row["path"]))
    assert crop.shape[:2] == (row["size"], row["size"])  # ... yet the crop is whole and square
    assert row["reason"] == ("clipped" if padding > Thresholds().max_padding else None)


def test_geometry_at_the_top_edge_replicates_the_edge_row():
    image = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3).astype(np.uint8)
    square = geometry.crop_square((20, 0, 40, 40), 80, 100, margin=0.25, shift=-0.1)
    assert square.side == 60 and square.y < 0
    assert square.padding_share == pytest.approx(-square.y * 60 / 3600, abs=1e-3)
    crop = geometry.cut(image, square)
    assert crop.shape == (60, 60, 3)
    assert (crop[0] == crop[-square.y]).all()  # rows above the image repeat its first row


def test_grayscale_image_is_found_and_rejected_as_low_color(edge_run):
    rows = edge_run["cases"]["gray"]
    assert len(rows) == 1 and rows[0]["reason"] == "low_color"
    assert rows[0]["values"]["saturation"] == 0.0


@pytest.mark.parametrize("case", ["garbage", "truncated", "empty", "missing", "escaping"])
def test_unreadable_sources_are_recorded_as_decode_errors(edge_run, case):
    rows = edge_run["cases"][case]
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == edge_run["raw"][case]["sha256"][:12] + "_image"
    assert (row["decision"], row["reason"], row["path"]) == ("rejected", "decode_error", None)
    assert row["values"]["error"]


def test_one_pixel_image_has_no_faces_and_no_error(edge_run):
    assert edge_run["cases"]["one_pixel"] == []


def test_huge_image_face_is_cropped_at_source_resolution(edge_run):
    rows = edge_run["cases"]["huge"]
    assert len(rows) == 1
    x, y, w, h = rows[0]["box"]
    assert 3000 < x < 3000 + 3 * 512 and 2000 < y < 4000 and w > 3 * 64
    assert rows[0]["decision"] == "accepted"
    crop = cv2.imread(str(edge_run["data"] / rows[0]["path"]))
    assert crop.shape[0] == crop.shape[1] == rows[0]["size"] > w


def test_rows_without_sha256_are_reported_not_dropped_silently(edge_run):
    assert "no valid sha256" in edge_run["stderr"]
    assert "raw rows without sha256 (skipped)  1" in edge_run["stderr"]


def test_too_large_image_is_refused_before_decoding(edge_run, tmp_path, cascade_path):
    data = edge_run["data"]
    config = write_facecrop_config(tmp_path / "small.toml", "max_pixels = 10_000_000\n")
    run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    rows = [r for r in read_crops_manifest(data) if r["source_sha256"] == edge_run["raw"]["huge"]["sha256"]]
    assert [(r["reason"], r["values"]["pixels"]) for r in rows] == [("too_large", 20_000_000)]
    assert not list(Layout(data).crops_dir.glob(f"{edge_run['raw']['huge']['sha256'][:12]}_*"))
