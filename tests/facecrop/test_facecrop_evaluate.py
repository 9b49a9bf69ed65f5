"""`facecrop evaluate` and the tilted-face search, on a small labelled set made here.

The labelled set is built in the test from real illustrations in ../shared/testdata/full: the
boxes of three upright faces come from CASCADE_BASELINE.tsv (boxes the cascade drew and the
shared data's author confirmed, not drawn by a person), and one face is tilted by turning its
whole image 40 degrees (`cv2.warpAffine`, canvas grown to hold it), its box mapped with the
same turn. The box format is the one in ../shared/facebench/README.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.cli import run_cli, run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.crops import read_crops_manifest
from tests.helpers.raw import store_raw

UPRIGHT = {  # file under testdata/full -> its one face, from CASCADE_BASELINE.tsv
    "style2paints_refs__1.png": [290, 82, 179, 179],
    "style2paints_refs__10.png": [191, 132, 218, 218],
    "style2paints_refs__12.png": [132, 103, 308, 308],
}
TILTED_FROM = "style2paints_refs__12.png"
TILT = 40.0


def rotation(width: int, height: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The map that turns a width x height image by `angle` onto a canvas grown to hold all of it."""
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(math.ceil(height * sin + width * cos)), int(math.ceil(height * cos + width * sin)))
    m[0, 2] += size[0] / 2 - width / 2
    m[1, 2] += size[1] / 2 - height / 2
    return m, size


def tilted_copy(source: Path, box: list[int], out: Path) -> list[float]:
    """Write `source` turned by TILT degrees to `out`; return the face's box there (same size, moved centre)."""
    image = cv2.imread(str(source))
    m, size = rotation(image.shape[1], image.shape[0], TILT)
    cv2.imwrite(str(out), cv2.warpAffine(image, m, size, borderMode=cv2.BORDER_REPLICATE))
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    tx, ty = m[0, 0] * cx + m[0, 1] * cy + m[0, 2], m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    return [tx - w / 2, ty - h / 2, float(w), float(h)]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, testdata) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("labelled")
    images, negatives = root / "images", root / "negatives"
    images.mkdir()
    negatives.mkdir()
    table = {}
    for name, box in UPRIGHT.items():
        (images / name).write_bytes((testdata / "full" / name).read_bytes())
        table[name] = {"size": None, "boxes": [box]}
    tilted = tilted_copy(testdata / "full" / TILTED_FROM, UPRIGHT[TILTED_FROM], images / "tilted.png")
    table["tilted.png"] = {"size": None, "boxes": [tilted]}
    for src in sorted((testdata / "negative").iterdir())[:3]:
        (negatives / src.name).write_bytes(src.read_bytes())
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps(table))
    return {"root": root, "images": images, "negatives": negatives, "boxes": boxes}


def evaluate(labelled, cascade_path, settings: str = "", *extra: str):
    config = write_facecrop_config(labelled["root"] / "settings.toml", settings)
    out = labelled["root"] / "report.json"
    result = run_cli(
        "facecrop",
        "evaluate",
        "--config",
        str(config),
        "--boxes",
        str(labelled["boxes"]),
        "--images",
        str(labelled["images"]),
        "--negatives",
        str(labelled["negatives"]),
        "--json",
        str(out),
        "--no-progress",
        *extra,
        "--cascade",
        cascade_path,
        check=True,
    )
    return result, json.loads(out.read_text())


def test_evaluate_finds_the_tilted_face_only_with_the_angle_search(labelled, cascade_path):
    before = sorted(p.name for p in labelled["root"].rglob("*"))
    result, upright_only = evaluate(labelled, cascade_path, "angles = []\n")
    scores = upright_only["scores"]["accepted@0.3"]
    assert (scores["tp"], scores["fn"], scores["fp"]) == (3, 1, 0)
    assert upright_only["lost"] == [
        {
            "file": "tilted.png",
            "box": upright_only["lost"][0]["box"],
            "reason": "not_detected",
            "crop_id": None,
            "values": {},
        }
    ]
    assert "accepted crops IoU 0.3" in result.stdout and "not_detected" in result.stdout

    _, searched = evaluate(labelled, cascade_path)
    scores = searched["scores"]["accepted@0.3"]
    assert (scores["tp"], scores["fn"], scores["fp"]) == (4, 0, 0)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (1.0, 1.0, 1.0)
    assert searched["accepted_on_negatives"] == 0 and searched["negatives"] == 3
    # Turned by 40 degrees, the face stands within the cascade's tolerance once turned back by 25.
    assert searched["angles"] == {"0": 3, "-25": 1}
    # Nothing was written beside the images: only this test's own report and config.
    after = sorted(p.name for p in labelled["root"].rglob("*"))
    assert set(after) - set(before) <= {"report.json", "settings.toml"}


def test_evaluate_names_the_rule_that_lost_a_face_and_draws_contact_sheets(labelled, cascade_path, tmp_path):
    # A face-side limit above every face here: each true face is lost to too_small, and says so.
    result, strict = evaluate(
        labelled, cascade_path, "[facecrop.thresholds]\nmin_face = 1000\n", "--show", str(tmp_path / "sheets")
    )
    assert strict["lost_by_reason"] == {"too_small": 4}
    assert all(face["deciding"][0] == "face_side" for face in strict["lost"])
    assert "too_small (face_side" in result.stdout
    for name in ("misses.png", "false_boxes.png"):
        sheet = cv2.imread(str(tmp_path / "sheets" / name))
        assert sheet is not None and sheet.shape[1] == 8 * 128
    misses = cv2.imread(str(tmp_path / "sheets" / "misses.png"))
    assert misses.shape[0] == 128 + 30  # four tiles: one row
    assert misses[:128, : 4 * 128].std() > 20  # real pixels, not a blank page


def test_evaluate_refuses_a_bad_boxes_file_in_one_line(labelled, cascade_path, tmp_path):
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps({"a.png": {"boxes": [[1, 2, 3]]}}))
    result = run_cli(
        "facecrop",
        "evaluate",
        "--boxes",
        str(bad),
        "--images",
        str(labelled["images"]),
        "--cascade",
        cascade_path,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "a.png" in lines[0] and "[x, y, w, h]" in lines[0]
    missing = run_cli(
        "facecrop",
        "evaluate",
        "--boxes",
        str(tmp_path / "nope.json"),
        "--images",
        ".",
        "--cascade",
        cascade_path,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_run_cuts_a_tilted_face_upright_and_keeps_upright_ids(tmp_path, testdata, cascade_path):
    tilted_file = tmp_path / "tilted.png"
    tilted_box = tilted_copy(testdata / "full" / TILTED_FROM, UPRIGHT[TILTED_FROM], tilted_file)
    data = tmp_path / "data"
    rows = store_raw(data, [testdata / "full" / TILTED_FROM, tilted_file])
    # Searched at exactly the tilt, so the crop must come out exactly level.
    config = write_facecrop_config(tmp_path / "dataset.toml", f"angles = [{-TILT}]\n")
    run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    crops = [r for r in read_crops_manifest(data) if r["box"]]
    upright = next(r for r in crops if r["source_sha256"] == rows[0]["sha256"])
    turned = next(r for r in crops if r["source_sha256"] == rows[1]["sha256"])
    # The upright face keeps the id format every override and dedup decision was made with.
    assert upright["angle"] == 0 and upright["id"] == "{}_{}_{}_{}_{}".format(
        rows[0]["sha256"][:12], *upright["box"]
    )
    assert turned["decision"] == "accepted" and turned["angle"] == -TILT
    assert turned["id"].endswith("_r320")
    centre = (turned["box"][0] + turned["box"][2] / 2, turned["box"][1] + turned["box"][3] / 2)
    truth = (tilted_box[0] + tilted_box[2] / 2, tilted_box[1] + tilted_box[3] / 2)
    assert math.dist(centre, truth) < 0.15 * tilted_box[2]
    # The crop was cut upright: at 64x64 it looks like the upright face's crop, not like a tilted one.
    a, b = (cv2.imread(str(data / r["path"]), cv2.IMREAD_GRAYSCALE) for r in (upright, turned))
    a, b = (cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32) for x in (a, b))
    level = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    still_tilted = cv2.warpAffine(a, cv2.getRotationMatrix2D((32, 32), TILT, 1.0), (64, 64))
    assert level > 0.7 and level > np.corrcoef(still_tilted.ravel(), b.ravel())[0, 1] + 0.2
