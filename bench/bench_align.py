"""Eye-aligned crops against box crops on the shared images: how much the eyes still move in the 64x64 faces.

`python -m facecrop` runs twice on `full/` + `negative/`, with `align = "off"` and `align = "eyes"`,
each in its own DATA folder under DATA/bench/align/. For every accepted crop, animeface looks for
the eyes again on the crop itself (the whole crop resized to 168 px, as the verifier sees a box
with its context), and their centres are mapped into the 64x64 face. The spread (standard
deviation, px) of each eye's position is the measure: it says how consistently the faces are
framed, which is what alignment is for. It re-detects with the same detector that found the
eyes for the alignment, so its errors are partly shared; read the aligned number as a lower
bound on the real spread, the unaligned one as the baseline under the same measurement.

Also written (into DATA, never into the repository, since the faces are third-party art):
`DATA/bench/align/side_by_side.png`, box crop left and aligned crop right for the same faces.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import animeface
import cv2
import numpy as np
from PIL import Image

from bench.bench_facecrop import _cascade, _images, _timed, make_data
from bench.report import BenchResult
from pipeline.layout import Layout

FACE = 64
LOOK = 168  # the crop is shown to animeface at this side (its box then measures ~112 px, the verifier's size)


def eyes_in_face(crop_bgr: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Both eye centres in 64x64-face px (leftmost first), from animeface on the crop; None when it finds none."""
    side = crop_bgr.shape[0]
    region = cv2.resize(crop_bgr, (LOOK, LOOK), interpolation=cv2.INTER_AREA if side > LOOK else cv2.INTER_CUBIC)
    found = animeface.detect(Image.fromarray(cv2.cvtColor(region, cv2.COLOR_BGR2RGB)))
    if not found:
        return None
    centre = LOOK / 2
    best = min(found, key=lambda f: abs(f.face.pos.x + f.face.pos.width / 2 - centre)
               + abs(f.face.pos.y + f.face.pos.height / 2 - centre))
    points = sorted(((e.pos.x + e.pos.width / 2) * FACE / LOOK, (e.pos.y + e.pos.height / 2) * FACE / LOOK)
                    for e in (best.left_eye, best.right_eye))
    return points[0], points[1]


def measure(data: Path) -> dict[str, object]:
    """Eye spread over the accepted crops of one run, and the crop kinds."""
    layout = Layout(data)
    rows = [json.loads(line) for line in layout.crops_manifest.read_text().splitlines() if line.strip()]
    accepted = [r for r in rows if r["decision"] == "accepted"]
    eyes, missed = {}, 0
    for row in accepted:
        crop = cv2.imread(str(layout.path(row["path"])), cv2.IMREAD_COLOR)
        found = eyes_in_face(crop)
        if found is None:
            missed += 1
        else:
            eyes[row["id"]] = found
    points = np.array(list(eyes.values()), dtype=float)  # [n, 2 eyes, (x, y)]
    distance = np.hypot(*(points[:, 1] - points[:, 0]).T)
    tilt = np.degrees(np.arctan2(points[:, 1, 1] - points[:, 0, 1], points[:, 1, 0] - points[:, 0, 0]))
    kinds = collections.Counter((r.get("align") or {}).get("kind", "box") for r in accepted)
    fallbacks = collections.Counter((r.get("align") or {}).get("fallback") for r in accepted
                                    if (r.get("align") or {}).get("fallback"))
    return {
        "accepted": len(accepted), "measured": len(eyes), "no_eyes_on_crop": missed,
        "eye_std_px": round(float(points.std(axis=0).mean()), 3),  # mean of the 4 per-coordinate stds
        "per_coordinate_std_px": points.std(axis=0).round(3).tolist(),
        "midpoint_std_px": points.mean(axis=1).std(axis=0).round(3).tolist(),
        "eye_distance_std_px": round(float(distance.std()), 3),
        "eye_distance_mean_px": round(float(distance.mean()), 3),
        "tilt_std_deg": round(float(tilt.std()), 3),
        "kinds": dict(kinds), "fallbacks": dict(fallbacks), "eyes": eyes,
    }


def side_by_side(box: Path, eyes: Path, out: Path, count: int = 24) -> Path:
    """Box crop | aligned crop, 64 px each, one face per row pair; written into DATA only."""
    a, b = Layout(box), Layout(eyes)
    rows = {json.loads(x)["id"]: json.loads(x) for x in b.crops_manifest.read_text().splitlines() if x.strip()}
    kept = [r for r in rows.values() if r["decision"] == "accepted"][:count]
    tiles = []
    for row in kept:
        pair = []
        for layout in (a, b):
            image = cv2.imread(str(layout.path(row["path"])), cv2.IMREAD_COLOR)
            pair.append(cv2.resize(image, (FACE, FACE), interpolation=cv2.INTER_AREA))
        tiles.append(np.concatenate([pair[0], np.full((FACE, 2, 3), 255, np.uint8), pair[1]], axis=1))
    cols = 6
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % cols)
    gap = np.full((FACE, 8, 3), 255, np.uint8)
    lines = [np.concatenate([x for t in tiles[i:i + cols] for x in (t, gap)], axis=1) for i in range(0, len(tiles), cols)]
    grid = np.concatenate([x for line in lines for x in (line, np.full((8, line.shape[1], 3), 255, np.uint8))])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid)
    return out


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    files, cascade = _images(testdata), _cascade(testdata)
    root = data_dir / "align"
    results, seconds = {}, {}
    for mode in ("off", "eyes"):
        data = root / mode
        make_data(data, files)
        config = root / f"{mode}.toml"
        config.write_text(f'[facecrop]\nalign = "{mode}"\n')
        seconds[mode], _ = _timed([sys.executable, "-m", "facecrop", "--config", str(config), "--data", str(data),
                                   "--cascade", str(cascade), "--no-progress"])
        results[mode] = measure(data)
    grid = side_by_side(root / "off", root / "eyes", root / "side_by_side.png")
    off, on = results["off"], results["eyes"]
    summary = {mode: {k: v for k, v in r.items() if k != "eyes"} for mode, r in results.items()}
    (root / "results.json").write_text(json.dumps({"results": summary, "seconds": seconds}, indent=2) + "\n")
    aligned = on["kinds"].get("aligned", 0)
    note = f"{on['measured']}/{on['accepted']} crops measured; grid {grid}"
    return [
        BenchResult("align", "eye position std in 64x64 faces, aligned vs box (px)", on["eye_std_px"],
                    off["eye_std_px"], "px", higher_is_better=False, note=note),
        BenchResult("align", "eye distance std, aligned vs box (px)", on["eye_distance_std_px"],
                    off["eye_distance_std_px"], "px", higher_is_better=False),
        BenchResult("align", "eye-line tilt std, aligned vs box (deg)", on["tilt_std_deg"], off["tilt_std_deg"], "deg",
                    higher_is_better=False),
        BenchResult("align", "accepted faces that fell back to the box crop", float(on["accepted"] - aligned), None,
                    "faces", higher_is_better=False, note=json.dumps(on["fallbacks"])),
        BenchResult("align", "facecrop wall time, align eyes vs off", seconds["eyes"], seconds["off"], "s",
                    higher_is_better=False),
    ]
