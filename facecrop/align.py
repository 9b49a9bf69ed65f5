"""Eye-aligned crops (`[facecrop] align = "eyes"`): rotate so the eyes are level, scale so their distance
is a fixed share of the crop side, and put their midpoint at a fixed point (what FFHQ did for photos).

The eyes are the animeface verdict's (`facecrop.verify`), already found for the verifier. The
crop is taken from the source image at source resolution (one rotation, edge-replicated where it
leaves the image, as box crops are), so dedup's resize to 64 px is the only other resampling:
the crop's side is the eye distance divided by `align_eye_distance`, so nothing is scaled here.

A face whose eyes are missing or implausible keeps the box crop, and the manifest says why
(`align.fallback`): no eyes found, an eye outside the detection box, a tilt beyond
`align_max_tilt`, an eye distance outside `align_eye_range` (share of the box side), or more of
the aligned square outside the image than `thresholds.max_padding`. The defaults put an average
face where the box crop puts it (measured on ../shared/testdata/full: eye distance 0.35 of the
box side, midpoint 0.42 of it down, i.e. 0.235 of a box crop's side and 0.52 of its height).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from facecrop import geometry

Eyes = tuple[tuple[float, float], tuple[float, float]]

KINDS = ("aligned", "box")
FALLBACKS = ("no_eyes", "eyes_outside_box", "tilt", "eye_distance", "clipped")


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    eye_distance: float  # target distance between the eyes, as a share of the crop side
    eye_x: float  # target midpoint, as shares of the crop side from the left ...
    eye_y: float  # ... and from the top
    max_tilt: float  # degrees; a steeper line through the eyes falls back to the box crop
    eye_range: tuple[float, float]  # plausible eye distance as a share of the detection box side
    max_padding: float  # share of the aligned square that may lie outside the image


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where the aligned square lies: its centre and side in source px, and the rotation that levels the eyes."""

    center: tuple[float, float]  # the crop's centre in source px
    side: int
    angle: float  # degrees the source is rotated (counter-clockwise) so the eyes are level
    scale: float  # aligned side / box-crop side: how much larger (>1) or smaller the framing is
    padding: float  # share of the square outside the image (measured on the rotated square)

    def matrix(self) -> np.ndarray:
        """The affine map from source px to crop px (what `cv2.warpAffine` takes)."""
        return geometry.square_matrix(self.center, self.side, self.angle)


@dataclasses.dataclass(frozen=True)
class Outcome:
    plan: Plan | None  # None: keep the box crop
    fallback: str | None  # why not, one of FALLBACKS
    angle: float | None  # the eyes' tilt in degrees (positive = the right eye lower), when eyes were found
    eye_ratio: float | None  # eye distance / box side
    padding: float | None = None  # share of the aligned square outside the image, when it was planned

    def record(self, eyes: Eyes | None) -> dict[str, Any]:
        """The manifest's `align` field: the kind of crop, the angle and scale, and why it fell back."""
        plan = self.plan
        return {
            "kind": "aligned" if plan else "box",
            "fallback": self.fallback,
            "angle": None if self.angle is None else round(self.angle, 2),
            "scale": round(plan.scale, 4) if plan else None,
            "eyes": [list(e) for e in eyes] if eyes else None,
            "eye_ratio": None if self.eye_ratio is None else round(self.eye_ratio, 4),
            "center": [round(plan.center[0], 2), round(plan.center[1], 2)] if plan else None,
            "side": plan.side if plan else None,
            "padding": self.padding,
        }


def plan(
    eyes: Eyes | None,
    box: tuple[int, int, int, int],
    box_side: int,
    image_w: int,
    image_h: int,
    settings: AlignSettings,
    found_at: float = 0.0,
) -> Outcome:
    """Decide whether (and how) this face is aligned; `box_side` is the box crop's side, for `scale`.

    `found_at` is the angle the face was detected at: the eyes refine it, and `max_tilt` bounds
    how far they may turn it, so a face found tilted by 30 degrees is levelled by its eyes too.
    """
    if eyes is None:
        return Outcome(None, "no_eyes", None, None)
    (ax, ay), (bx, by) = sorted(eyes)
    x, y, w, h = box
    dx, dy = bx - ax, by - ay
    angle = math.degrees(math.atan2(dy, dx))
    distance = math.hypot(dx, dy)
    ratio = distance / max(w, h)
    if not all(_in_box(eye, box, found_at) for eye in ((ax, ay), (bx, by))):
        return Outcome(None, "eyes_outside_box", angle, ratio)
    if abs(angle - found_at) > settings.max_tilt:
        return Outcome(None, "tilt", angle, ratio)
    if not settings.eye_range[0] <= ratio <= settings.eye_range[1]:
        return Outcome(None, "eye_distance", angle, ratio)
    side = max(1, int(round(distance / settings.eye_distance)))
    # The crop centre sits (0.5 - eye_x, 0.5 - eye_y) sides from the eye midpoint, in the levelled frame.
    rad = math.radians(angle)
    ox, oy = (0.5 - settings.eye_x) * side, (0.5 - settings.eye_y) * side
    mx, my = (ax + bx) / 2, (ay + by) / 2
    center = (mx + ox * math.cos(rad) - oy * math.sin(rad), my + ox * math.sin(rad) + oy * math.cos(rad))
    provisional = Plan(center, side, angle, side / box_side, 0.0)
    padding = outside_share(provisional, image_w, image_h)
    aligned = dataclasses.replace(provisional, padding=padding)
    if padding > settings.max_padding:
        return Outcome(None, "clipped", angle, ratio, padding)
    return Outcome(aligned, None, angle, ratio, padding)


def _in_box(eye: tuple[float, float], box: tuple[int, int, int, int], found_at: float) -> bool:
    """Whether the eye lies in the box, the box turned with the face when it was found tilted."""
    x, y, w, h = box
    ex, ey = eye
    if found_at:
        cx, cy = x + w / 2, y + h / 2
        rad = math.radians(found_at)
        dx, dy = ex - cx, ey - cy
        ex, ey = cx + dx * math.cos(rad) + dy * math.sin(rad), cy - dx * math.sin(rad) + dy * math.cos(rad)
    return x <= ex <= x + w and y <= ey <= y + h


def outside_share(plan: Plan, image_w: int, image_h: int) -> float:
    """Share of the rotated square's pixels that map outside the image."""
    return geometry.outside_share(plan.matrix(), plan.side, image_w, image_h)


def cut(image: np.ndarray, plan: Plan) -> np.ndarray:
    """The aligned square at source resolution: one rotation, edges replicated like box crops."""
    return geometry.warp_cut(image, plan.matrix(), plan.side)


def eyes_in_crop(eyes: Eyes, plan: Plan) -> list[tuple[float, float]]:
    """Where the source eyes land in the crop (for tests and the benchmark): the map applied to each."""
    m = plan.matrix()
    return [
        (m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]) for x, y in sorted(eyes)
    ]
