"""The second opinion: animeface (nagadomi's animeface-2009) on the region around a box.

animeface is resolution-sensitive: measured on ../shared/testdata, the box with 25% context
resized to 112 px confirmed all 104 true boxes on full/ and none of the 2 false boxes on
negative/ at about a fifth of the cost of the 50%/192 px setting (see docs/facecrop.md).
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


def verify_views(
    image_bgr: np.ndarray, box: tuple[int, int, int, int], margins: tuple[float, ...], size: int, angle: float
) -> Verdict:
    """The most confident of several looks at one box, each with its own margin of context.

    animeface misses some true faces in one framing and confirms them in another (measured on
    ../shared/facebench: see docs/facecrop.md, "How faces are found"). A later look is taken only while
    no look is certain (likelihood 1.0), so the result is the maximum over every look and a
    stored likelihood can be re-thresholded without the image.
    """
    best = None
    for margin in margins:
        verdict = verify(image_bgr, box, margin, size, angle)
        if best is None or verdict.likelihood > best.likelihood:
            best = verdict
        if best.likelihood >= 1.0:
            break
    assert best is not None, "at least one margin"
    return best


def verify(
    image_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int, angle: float = 0.0
) -> Verdict:
    """animeface on the box with `margin` of context, resized to `size`; a tilted face is first stood upright."""
    view = (
        upright_view(image_bgr, box, margin, size, angle)
        if angle
        else clipped_view(image_bgr, box, margin, size)
    )
    if _SRAND is not None:
        _SRAND(0)
    faces = animeface.detect(Image.fromarray(cv2.cvtColor(view.region, cv2.COLOR_BGR2RGB)))
    bx0, by0, bx1, by1 = view.box
    best = None
    for face in faces:
        pos = face.face.pos
        overlap_w = min(bx1, pos.x + pos.width) - max(bx0, pos.x)
        overlap_h = min(by1, pos.y + pos.height) - max(by0, pos.y)
        if overlap_w > 0 and overlap_h > 0 and (best is None or face.likelihood > best.likelihood):
            best = face
    if best is None:
        return Verdict(0.0, None, None)
    centres = sorted(view.to_source(eye.pos) for eye in (best.left_eye, best.right_eye))
    return Verdict(
        round(float(best.likelihood), 4),
        _hex(best.hair.color),
        [_hex(best.left_eye.color), _hex(best.right_eye.color)],
        (centres[0], centres[1]),
    )


@dataclasses.dataclass(frozen=True)
class View:
    """What animeface is shown: the region, where the box lies in it, and the map back to source px."""

    region: np.ndarray
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in region px
    inverse: np.ndarray  # 2x3 affine, region px -> source px

    def to_source(self, pos) -> tuple[float, float]:
        """An eye rectangle in the region, as its centre in source px."""
        u, v = pos.x + pos.width / 2, pos.y + pos.height / 2
        m = self.inverse
        return (round(m[0, 0] * u + m[0, 1] * v + m[0, 2], 2), round(m[1, 0] * u + m[1, 1] * v + m[1, 2], 2))


def clipped_view(image_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int) -> View:
    """An upright face: the box with its margin, clipped to the image, longer side resized to `size`."""
    x, y, w, h = box
    img_h, img_w = image_bgr.shape[:2]
    m = int(round(max(w, h) * margin))
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(img_w, x + w + m), min(img_h, y + h + m)
    region = image_bgr[y0:y1, x0:x1]
    scale = size / max(region.shape[:2])
    out_w, out_h = max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    region = cv2.resize(region, (out_w, out_h), interpolation=interpolation)
    inside = ((x - x0) * scale, (y - y0) * scale, (x + w - x0) * scale, (y + h - y0) * scale)
    return View(region, inside, np.array([[1 / scale, 0.0, x0], [0.0, 1 / scale, y0]]))


def upright_view(
    image_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int, angle: float
) -> View:
    """A tilted face: the square around the box's centre, rotated by `angle` and scaled to `size`.

    Edges are replicated where the square leaves the image, as crops are.
    """
    x, y, w, h = box
    side = max(w, h) + 2 * int(round(max(w, h) * margin))
    center = (x + w / 2, y + h / 2)
    m = cv2.getRotationMatrix2D(center, angle, 1.0)
    m[0, 2] += side / 2 - center[0]
    m[1, 2] += side / 2 - center[1]
    square = cv2.warpAffine(
        image_bgr, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    scale = size / side
    region = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    half_w, half_h = w * scale / 2, h * scale / 2
    inside = (size / 2 - half_w, size / 2 - half_h, size / 2 + half_w, size / 2 + half_h)
    return View(region, inside, cv2.invertAffineTransform(m * scale))  # m * scale: source px -> region px
