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
    region = cv2.resize(
        crop_bgr, (LOOK, LOOK), interpolation=cv2.INTER_AREA if side > LOOK else cv2.INTER_CUBIC
    )
    found = animeface.detect(Image.fromarray(cv2.cvtColor(region, cv2.COLOR_BGR2RGB)))
    if not found:
        return None
    centre = LOOK / 2
    best = min(
        found,
        key=lambda f: (
            abs(f.face.pos.x + f.face.pos.width / 2 - centre)
            + abs(f.face.pos.y + f.face.pos.height / 2 - centre)
        ),
    )
    points = sorted(
        ((e.pos.x + e.pos.width / 2) * FACE / LOOK, (e.pos.y + e.pos.height / 2) * FACE / LOOK)
        for e in (best.left_eye, best.right_eye)
    )
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
    fallbacks = collections.Counter(
        (r.get("align") or {}).get("fallback") for r in accepted if (r.get("align") or {}).get("fallback")
    )
    return {
        "accepted": len(accepted),
        "measured": len(eyes),
        "no_eyes_on_crop": missed,
        "eye_std_px": round(float(points.std(axis=0).mean()), 3),  # mean of the 4 per-coordinate stds
        "per_coordinate_std_px": points.std(axis=0).round(3).tolist(),
        "midpoint_std_px": points.mean(axis=1).std(axis=0).round(3).tolist(),
        "eye_distance_std_px": round(float(distance.std()), 3),
        "eye_distance_mean_px": round(float(distance.mean()), 3),
        "tilt_std_deg": round(float(tilt.std()), 3),
        "kinds": dict(kinds),
        "fallbacks": dict(fallbacks),
        "eyes": eyes,
    }


def recorded_spread(box: Path, eyes: Path) -> dict[str, float]:
    """Eye spread (px in 64x64 faces) from the eyes the alignment itself used, mapped into each kind of crop.

    No second detection, so no detector noise on top: the box crops' number is the framing spread
    alignment removes, the aligned one what is left of it (rounding, and the faces that fell back).
    """
    rows = {r["id"]: r for r in map(json.loads, Layout(eyes).crops_manifest.read_text().splitlines())}
    boxed = {r["id"]: r for r in map(json.loads, Layout(box).crops_manifest.read_text().splitlines())}
    in_box, in_aligned = [], []
    for crop_id, row in rows.items():
        record = row.get("align") or {}
        if row["decision"] != "accepted" or not record.get("eyes"):
            continue
        x0, y0, side, _ = boxed[crop_id]["crop_box"]
        in_box.append([((x - x0) * FACE / side, (y - y0) * FACE / side) for x, y in record["eyes"]])
        if record["kind"] == "aligned":
            from facecrop.align import Plan, eyes_in_crop

            plan = Plan(
                tuple(record["center"]), record["side"], record["angle"], record["scale"], record["padding"]
            )
            in_aligned.append(
                [
                    (x * FACE / plan.side, y * FACE / plan.side)
                    for x, y in eyes_in_crop(tuple(map(tuple, record["eyes"])), plan)
                ]
            )
        else:
            in_aligned.append(in_box[-1])
    return {
        "box": round(float(np.array(in_box).std(axis=0).mean()), 3),
        "aligned": round(float(np.array(in_aligned).std(axis=0).mean()), 3),
        "faces": len(in_box),
    }


def side_by_side(box: Path, eyes: Path, out: Path, count: int = 24) -> Path:
    """Box crop | aligned crop, 64 px each, one face per row pair; written into DATA only."""
    a, b = Layout(box), Layout(eyes)
    rows = {
        json.loads(x)["id"]: json.loads(x) for x in b.crops_manifest.read_text().splitlines() if x.strip()
    }
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
    lines = [
        np.concatenate([x for t in tiles[i : i + cols] for x in (t, gap)], axis=1)
        for i in range(0, len(tiles), cols)
    ]
    grid = np.concatenate(
        [x for line in lines for x in (line, np.full((8, line.shape[1], 3), 255, np.uint8))]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid)
    return out


def _crop_with(root: Path, mode: str, files: list[Path], cascade: Path) -> tuple[float, dict]:
    """facecrop's CLI on its own DATA with `align = mode`: its wall time and what its crops measure."""
    data = root / mode
    make_data(data, files)
    config = root / f"{mode}.toml"
    config.write_text(f'[facecrop]\nalign = "{mode}"\n')
    command = ["-m", "facecrop", "--config", str(config), "--data", str(data), "--cascade", str(cascade)]
    seconds, _ = _timed([sys.executable, *command, "--no-progress"])
    return seconds, measure(data)


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    files, cascade = _images(testdata), _cascade(testdata)
    root = data_dir / "align"
    results, seconds = {}, {}
    for mode in ("off", "eyes"):
        seconds[mode], results[mode] = _crop_with(root, mode, files, cascade)
    grid = side_by_side(root / "off", root / "eyes", root / "side_by_side.png")
    recorded = recorded_spread(root / "off", root / "eyes")
    off, on = results["off"], results["eyes"]
    summary = {mode: {k: v for k, v in r.items() if k != "eyes"} for mode, r in results.items()}
    (root / "results.json").write_text(
        json.dumps({"results": summary, "recorded_eyes": recorded, "seconds": seconds}, indent=2) + "\n"
    )
    return _rows(on, off, recorded, seconds, f"{on['measured']}/{on['accepted']} crops measured; grid {grid}")


def _rows(on: dict, off: dict, recorded: dict, seconds: dict[str, float], note: str) -> list[BenchResult]:
    aligned = on["kinds"].get("aligned", 0)
    return [
        BenchResult(
            "align",
            "eye position std in 64x64 faces, aligned vs box (px)",
            on["eye_std_px"],
            off["eye_std_px"],
            "px",
            higher_is_better=False,
            note=note,
        ),
        BenchResult(
            "align",
            "same, from the eyes alignment used (no re-detection)",
            recorded["aligned"],
            recorded["box"],
            "px",
            higher_is_better=False,
            note=f"{recorded['faces']} accepted faces",
        ),
        BenchResult(
            "align",
            "eye distance std, aligned vs box (px)",
            on["eye_distance_std_px"],
            off["eye_distance_std_px"],
            "px",
            higher_is_better=False,
        ),
        BenchResult(
            "align",
            "eye-line tilt std, aligned vs box (deg)",
            on["tilt_std_deg"],
            off["tilt_std_deg"],
            "deg",
            higher_is_better=False,
        ),
        BenchResult(
            "align",
            "accepted faces that fell back to the box crop",
            float(on["accepted"] - aligned),
            None,
            "faces",
            higher_is_better=False,
            note=json.dumps(on["fallbacks"]),
        ),
        BenchResult(
            "align",
            "facecrop wall time, align eyes vs off",
            seconds["eyes"],
            seconds["off"],
            "s",
            higher_is_better=False,
        ),
    ]


def _draw_eyes(image: np.ndarray, eyes: list[tuple[int, int]], face: float, tilt: float, iris: tuple) -> None:
    for ex, ey in eyes:
        white, pupil = (int(face * 0.09), int(face * 0.12)), (int(face * 0.06), int(face * 0.1))
        cv2.ellipse(image, (ex, ey), white, tilt, 0, 360, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.ellipse(image, (ex, ey), pupil, tilt, 0, 360, iris, -1, cv2.LINE_AA)
        cv2.circle(image, (ex, ey), max(2, int(face * 0.025)), (20, 20, 20), -1, cv2.LINE_AA)


def drawn_face(
    rng: np.random.Generator, size: int = 256
) -> tuple[np.ndarray, tuple[int, int, int, int], list]:
    """A synthetic anime-style face at a random tilt, size and place: (image, detection-like box, eye centres).

    For the repository's figure: the shared faces are third-party art and never enter it.
    """
    image = np.full((size, size, 3), rng.integers(150, 240, 3).tolist(), np.uint8)
    face = float(rng.uniform(70, 110))
    cx, cy = rng.uniform(0.42, 0.58) * size, rng.uniform(0.45, 0.6) * size
    tilt = float(rng.uniform(-22, 22))
    rad = np.radians(tilt)

    def at(
        dx: float, dy: float
    ) -> tuple[int, int]:  # a point in the face's own frame, rotated into the image
        return (
            int(round(cx + dx * np.cos(rad) - dy * np.sin(rad))),
            int(round(cy + dx * np.sin(rad) + dy * np.cos(rad))),
        )

    hair = tuple(int(v) for v in rng.integers(30, 220, 3))
    cv2.ellipse(
        image, at(0, -0.12 * face), (int(face * 0.62), int(face * 0.6)), tilt, 180, 360, hair, -1, cv2.LINE_AA
    )
    cv2.ellipse(
        image, at(0, 0), (int(face * 0.48), int(face * 0.56)), tilt, 0, 360, (200, 220, 250), -1, cv2.LINE_AA
    )
    cv2.ellipse(
        image, at(0, -0.32 * face), (int(face * 0.5), int(face * 0.22)), tilt, 180, 360, hair, -1, cv2.LINE_AA
    )
    spread = float(rng.uniform(0.16, 0.2)) * face
    eyes = [at(-spread, 0.02 * face), at(spread, 0.02 * face)]
    iris = tuple(int(v) for v in rng.integers(0, 200, 3))
    _draw_eyes(image, eyes, face, tilt, iris)
    cv2.ellipse(
        image,
        at(0, 0.3 * face),
        (int(face * 0.08), int(face * 0.03)),
        tilt,
        0,
        180,
        (60, 60, 160),
        2,
        cv2.LINE_AA,
    )
    # The cascade's box is upright and roughly the face's size, wherever the face is turned.
    side = int(face)
    box = (int(cx - side / 2), int(cy - side * 0.55), side, side)
    return image, box, [(float(x), float(y)) for x, y in eyes]


def synthetic_grid(out: Path, count: int = 12, seed: int = 7) -> Path:
    """Box crop | aligned crop for drawn faces with known eyes, with the target eye line marked: the docs/facecrop.md figure."""
    from facecrop import align, geometry
    from facecrop.config import FacecropConfig

    cfg = FacecropConfig(align="eyes")
    rng = np.random.default_rng(seed)
    tiles = []
    target_y = int(round(cfg.align_eye_y * FACE))
    for _ in range(count):
        image, box, eyes = drawn_face(rng)
        square = geometry.crop_square(box, image.shape[1], image.shape[0], cfg.margin, cfg.shift)
        boxed = geometry.cut(image, square)
        outcome = align.plan(
            tuple(map(tuple, eyes)), box, square.side, image.shape[1], image.shape[0], cfg.align_settings()
        )
        aligned = align.cut(image, outcome.plan) if outcome.plan else boxed
        pair = [cv2.resize(c, (FACE, FACE), interpolation=cv2.INTER_AREA) for c in (boxed, aligned)]
        for tile in pair:
            tile[target_y, ::4] = (0, 0, 255)  # the eye line alignment aims for, dotted
        tiles.append(np.concatenate([pair[0], np.full((FACE, 2, 3), 255, np.uint8), pair[1]], axis=1))
    cols, gap = 6, 8
    lines = []
    for i in range(0, len(tiles), cols):
        row = tiles[i : i + cols]
        lines.append(
            np.concatenate([x for t in row for x in (t, np.full((FACE, gap, 3), 255, np.uint8))], axis=1)
        )
    grid = np.concatenate(
        [x for line in lines for x in (line, np.full((gap, lines[0].shape[1], 3), 255, np.uint8))]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", grid)
    out.write_bytes(png.tobytes())
    return out


if __name__ == "__main__":
    # `python -m bench.bench_align docs/samples/align_synthetic.png`: the figure, from drawn faces only.
    print(synthetic_grid(Path(sys.argv[1] if len(sys.argv) > 1 else "align_synthetic.png")))
