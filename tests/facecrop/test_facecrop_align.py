"""Eye-aligned crops: the transform on drawn eyes, every fallback, and `align` switched on and off on real images."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facecrop import align
from facecrop.config import FacecropConfig
from pipeline.layout import Layout, rel_reject
from tests.helpers.cli import run_cli, run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.crops import read_crops_manifest
from tests.helpers.raw import shared_images, store_raw

SETTINGS = FacecropConfig(align="eyes").align_settings()


def drawn_face(eyes: list[tuple[float, float]], size: tuple[int, int] = (400, 300)) -> np.ndarray:
    """A grey canvas with two coloured discs where the eyes are (left one red, right one blue)."""
    image = np.full((size[1], size[0], 3), 128, np.uint8)
    for (x, y), colour in zip(sorted(eyes), ((0, 0, 255), (255, 0, 0)), strict=True):
        cv2.circle(image, (round(x), round(y)), 5, colour, -1, lineType=cv2.LINE_AA)
    return image


def centroid(image: np.ndarray, channel: int) -> tuple[float, float]:
    mask = (image[:, :, channel].astype(int) - image.mean(axis=2)) > 40
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


@pytest.mark.parametrize("tilt", [-20.0, -5.0, 0.0, 12.0, 25.0])
def test_eyes_land_level_at_the_target_points(tilt: float) -> None:
    distance, mid = 60.0, (200.0, 150.0)
    dx, dy = distance / 2 * math.cos(math.radians(tilt)), distance / 2 * math.sin(math.radians(tilt))
    eyes = ((mid[0] - dx, mid[1] - dy), (mid[0] + dx, mid[1] + dy))
    box = (130, 90, 160, 160)
    outcome = align.plan(eyes, box, 240, 400, 300, SETTINGS)
    assert outcome.fallback is None and outcome.plan is not None
    assert outcome.angle == pytest.approx(tilt, abs=1e-6)
    crop = align.cut(drawn_face(list(eyes)), outcome.plan)
    side = outcome.plan.side
    assert crop.shape == (side, side, 3) and side == round(distance / SETTINGS.eye_distance)
    left, right = centroid(crop, 2), centroid(crop, 0)  # red (BGR channel 2) is the leftmost eye
    target_y = SETTINGS.eye_y * side
    assert left[1] == pytest.approx(target_y, abs=1.0) and right[1] == pytest.approx(target_y, abs=1.0)
    assert (left[0] + right[0]) / 2 == pytest.approx(SETTINGS.eye_x * side, abs=1.0)
    assert right[0] - left[0] == pytest.approx(SETTINGS.eye_distance * side, abs=1.5)
    assert outcome.record(eyes)["kind"] == "aligned" and outcome.record(eyes)["scale"] == round(side / 240, 4)


def test_implausible_eyes_keep_the_box_crop_and_say_why() -> None:
    box, image = (100, 100, 160, 160), (400, 400)
    cases = {
        "no_eyes": None,
        "eyes_outside_box": ((90.0, 160.0), (150.0, 160.0)),
        "tilt": ((150.0, 150.0), (190.0, 190.0)),  # 45 degrees
        "eye_distance": ((175.0, 160.0), (185.0, 160.0)),  # 10 px on a 160 px face
    }
    for reason, eyes in cases.items():
        outcome = align.plan(eyes, box, 240, *image, SETTINGS)
        assert outcome.plan is None and outcome.fallback == reason, reason
        assert outcome.record(eyes)["kind"] == "box"
    # Near a corner the aligned square would be mostly edge-replicated: clipped, like a box crop would be.
    corner = align.plan(((20.0, 30.0), (70.0, 30.0)), (0, 0, 160, 160), 240, 400, 400, SETTINGS)
    assert corner.fallback == "clipped"


def test_align_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="align_min_eye_ratio"):
        FacecropConfig(align="eyes", align_min_eye_ratio=0.6)
    # off: ignored
    assert FacecropConfig().fingerprint("c") == FacecropConfig(align_max_tilt=10.0).fingerprint("c")
    assert FacecropConfig().fingerprint("c") != FacecropConfig(align="eyes").fingerprint("c")


@pytest.mark.testdata
def test_switching_alignment_on_and_off_equals_clean_runs(
    tmp_path: Path, testdata: Path, cascade_path: Path
) -> None:
    files = shared_images(testdata, "full")[:24]
    runs = {}
    for mode in ("off", "eyes"):
        data = tmp_path / mode
        store_raw(data, files)
        config = write_facecrop_config(tmp_path / f"{mode}.toml", f'align = "{mode}"\n')
        run_stage("facecrop", data, config, cascade=cascade_path, check=True)
        runs[mode] = data
    off, eyes = read_crops_manifest(runs["off"]), read_crops_manifest(runs["eyes"])
    assert [r["id"] for r in off] == [r["id"] for r in eyes]
    # Decisions are measured on the box crop: alignment changes pixels, never which faces are accepted.
    assert [r["decision"] for r in off] == [r["decision"] for r in eyes]
    assert all("align" not in r for r in off)
    faces = [r for r in eyes if r["box"]]
    assert faces and all(r["align"]["kind"] in align.KINDS for r in faces)
    aligned = [r for r in faces if r["align"]["kind"] == "aligned"]
    assert aligned, "no face was aligned"
    for row in faces:
        record = row["align"]
        if record["kind"] == "aligned":
            assert (
                record["fallback"] is None and record["side"] == row["size"] and record["angle"] is not None
            )
        else:
            assert record["fallback"] in align.FALLBACKS
        png = cv2.imread(str(Layout(runs["eyes"]).path(row["path"] or rel_reject(row["reason"], row["id"]))))
        assert png is not None and png.shape[0] == png.shape[1] == row["size"]

    # One DATA switched on, then off again, ends byte-identical to the clean run of each setting.
    switched = tmp_path / "switched"
    shutil.copytree(runs["off"], switched)
    on = run_stage("facecrop", switched, tmp_path / "eyes.toml", cascade=cascade_path, check=True)
    assert Layout(switched).crops_manifest.read_bytes() == Layout(runs["eyes"]).crops_manifest.read_bytes()
    assert "processed now" in on.stdout + on.stderr
    assert re.search(rf"eye alignment:?\s*\n\s+aligned\s+{len(aligned)}\b", on.stderr), on.stderr
    # With alignment on, a threshold change still only re-decides: no image is read again.
    stricter = write_facecrop_config(
        tmp_path / "stricter.toml", 'align = "eyes"\n[facecrop.thresholds]\nmin_sharpness = 400.0\n'
    )
    redecided = run_stage("facecrop", switched, stricter, cascade=cascade_path, check=True)
    assert re.search(r"images processed now\s+0\b", redecided.stderr), redecided.stderr
    assert all(
        r["align"] == e["align"] for r, e in zip(read_crops_manifest(switched), eyes, strict=True) if r["box"]
    )
    run_stage("facecrop", switched, tmp_path / "off.toml", cascade=cascade_path, check=True)
    assert Layout(switched).crops_manifest.read_bytes() == Layout(runs["off"]).crops_manifest.read_bytes()
    for row in off:
        if row["path"]:
            assert (
                Layout(switched).path(row["path"]).read_bytes()
                == Layout(runs["off"]).path(row["path"]).read_bytes()
            )


@pytest.mark.testdata
def test_an_unknown_align_value_is_a_config_error(tmp_path: Path, testdata: Path, cascade_path: Path) -> None:
    data = tmp_path / "data"
    store_raw(data, shared_images(testdata, "full")[:1])
    config = write_facecrop_config(tmp_path / "bad.toml", 'align = "nose"\n')
    result = run_cli("facecrop", "--config", str(config), "--data", str(data), "--cascade", cascade_path)
    assert result.returncode == 2 and "align" in result.stderr


def test_a_face_found_tilted_is_levelled_by_its_eyes_within_max_tilt_of_its_search_angle() -> None:
    """The eyes refine the angle a tilted face was found at: a 38-degree eye line is past `max_tilt` from
    upright, but within it of the 40 degrees the face was found at, so that face is aligned."""
    distance, mid, tilt = 60.0, (200.0, 150.0), 38.0
    dx, dy = distance / 2 * math.cos(math.radians(tilt)), distance / 2 * math.sin(math.radians(tilt))
    eyes = ((mid[0] - dx, mid[1] - dy), (mid[0] + dx, mid[1] + dy))
    box = (130, 90, 160, 160)
    assert align.plan(eyes, box, 240, 400, 300, SETTINGS).fallback == "tilt"
    found_tilted = align.plan(eyes, box, 240, 400, 300, SETTINGS, found_at=40.0)
    assert found_tilted.fallback is None and found_tilted.angle == pytest.approx(tilt, abs=1e-6)
    crop = align.cut(drawn_face(list(eyes)), found_tilted.plan)
    left, right = centroid(crop, 2), centroid(crop, 0)
    assert left[1] == pytest.approx(right[1], abs=2.0)  # level: within 2 degrees over the eye distance
    # An eye far outside the box once the box is turned with the face is still refused.
    stray = ((mid[0] - dx, mid[1] - dy), (mid[0] + 150.0, mid[1] + 118.0))
    assert align.plan(stray, box, 240, 400, 300, SETTINGS, found_at=40.0).fallback == "eyes_outside_box"
