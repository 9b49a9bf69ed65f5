"""Contact sheets for `facecrop evaluate --show DIR`: the faces a run loses, and the false boxes it keeps.

A person tunes settings by looking, so each tile is the region at issue with two lines under it:
the file name and why (the rule that rejected a lost face, or the angle of a false box). Tiles
are cut from the source images where they lie and written only to the directory asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecrop import geometry
from facecrop.decode import decode_file
from pipeline import atomic

TILE = 128
CAPTION = 30
COLUMNS = 8
MAX_TILES = 400


def sheet(tiles: list[tuple[np.ndarray, str, str]]) -> np.ndarray:
    """Tiles (BGR crop, first line, second line) on a grid, `COLUMNS` wide."""
    rows = max(1, -(-len(tiles) // COLUMNS))
    out = np.full((rows * (TILE + CAPTION), COLUMNS * TILE, 3), 255, np.uint8)
    for i, (crop, first, second) in enumerate(tiles):
        y, x = (i // COLUMNS) * (TILE + CAPTION), (i % COLUMNS) * TILE
        out[y : y + TILE, x : x + TILE] = cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)
        for line, text in enumerate((first, second)):
            cv2.putText(
                out, text[:21], (x + 2, y + TILE + 12 + 13 * line), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1
            )
    return out


def _region(image: np.ndarray, box: tuple[float, float, float, float], angle: float = 0.0) -> np.ndarray:
    """The box with a quarter of its side around it, turned upright for a tilted face."""
    square = geometry.crop_square(
        tuple(int(round(v)) for v in box), image.shape[1], image.shape[0], 0.25, 0.0, angle
    )
    return geometry.cut(image, square)


def write(
    show_dir: Path, lost: list[dict[str, Any]], false: list[tuple[Any, dict[str, Any]]], paths
) -> list[Path]:
    """`misses.png` and `false_boxes.png` in `show_dir`; `paths` maps an evaluated file name to its path."""
    show_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[str, np.ndarray] = {}

    def source(name: str) -> np.ndarray:
        if name not in cache:
            cache.clear()  # one source at a time: tiles come grouped by file
            cache[name] = decode_file(paths[name], 1 << 40).image
        return cache[name]

    missed = [(_region(source(f["file"]), f["box"]), f["file"], f["reason"]) for f in lost[:MAX_TILES]]
    kept = [
        (
            _region(source(image.name), row["box"], row.get("angle") or 0.0),
            image.name,
            f"conf {row['confidence']} a {row.get('angle') or 0:g}",
        )
        for image, row in false[:MAX_TILES]
    ]
    written = []
    for name, tiles in (("misses.png", missed), ("false_boxes.png", kept)):
        ok, png = cv2.imencode(".png", sheet(tiles))
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {name}")
        atomic.write_bytes(show_dir / name, png.tobytes())
        written.append(show_dir / name)
    return written
