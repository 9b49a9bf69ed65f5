"""The second opinion: animeface (nagadomi's animeface-2009) on the region around a box.

animeface is resolution-sensitive: measured on ../shared/testdata, the box with 25% context
resized to 112 px confirmed all 104 true boxes on full/ and none of the 2 false boxes on
negative/ at about a fifth of the cost of the 50%/192 px setting (see README.md, "facecrop").
"""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

import animeface
import cv2
import numpy as np
from PIL import Image


def _seeder():
    """animeface picks hair/eye colours with its own PRNG, seeded from the clock: the same crop got
    different colours in every run. Re-seeding it (the bundled libnvxs exports nv_srand) before
    each call makes the manifest reproducible, which resume-after-kill relies on."""
    libs = Path(animeface.__file__).resolve().parent.parent / "animeface.libs"
    for candidate in sorted(libs.glob("libnvxs*")):
        try:
            lib = ctypes.CDLL(str(candidate))
            lib.nv_srand.argtypes = [ctypes.c_ulong]
            return lib.nv_srand
        except (OSError, AttributeError):
            continue
    return None


_SRAND = _seeder()


@dataclasses.dataclass(frozen=True)
class Verdict:
    likelihood: float  # 0.0 when animeface found no face overlapping the box
    hair_color: str | None
    eye_colors: list[str] | None
    # Centres of the two eyes in source px, leftmost in the image first; None without a face.
    # Eye-aligned crops (`facecrop.align`) are cut from these, so no second animeface call is needed.
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None


def _hex(color) -> str:
    return f"#{color.r:02x}{color.g:02x}{color.b:02x}"


def verify(image_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int) -> Verdict:
    x, y, w, h = box
    img_h, img_w = image_bgr.shape[:2]
    m = int(round(max(w, h) * margin))
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(img_w, x + w + m), min(img_h, y + h + m)
    region = image_bgr[y0:y1, x0:x1]
    scale = size / max(region.shape[:2])
    out_w, out_h = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    region = cv2.resize(region, (out_w, out_h), interpolation=interpolation)
    if _SRAND is not None:
        _SRAND(0)
    faces = animeface.detect(Image.fromarray(cv2.cvtColor(region, cv2.COLOR_BGR2RGB)))
    bx0, by0, bx1, by1 = (x - x0) * scale, (y - y0) * scale, (x + w - x0) * scale, (y + h - y0) * scale
    best = None
    for face in faces:
        pos = face.face.pos
        overlap_w = min(bx1, pos.x + pos.width) - max(bx0, pos.x)
        overlap_h = min(by1, pos.y + pos.height) - max(by0, pos.y)
        if overlap_w > 0 and overlap_h > 0 and (best is None or face.likelihood > best.likelihood):
            best = face
    if best is None:
        return Verdict(0.0, None, None)
    centres = sorted(_centre(eye.pos, x0, y0, scale) for eye in (best.left_eye, best.right_eye))
    return Verdict(
        round(float(best.likelihood), 4),
        _hex(best.hair.color),
        [_hex(best.left_eye.color), _hex(best.right_eye.color)],
        (centres[0], centres[1]),
    )


def _centre(pos, x0: int, y0: int, scale: float) -> tuple[float, float]:
    """An eye rectangle in the resized region, as its centre in source px."""
    return (round(x0 + (pos.x + pos.width / 2) / scale, 2), round(y0 + (pos.y + pos.height / 2) / scale, 2))
