"""Running lbpcascade_animeface at several angles and keeping every box with its confidence.

`detectMultiScale3` with `outputRejectLevels` returns the level weight of the last cascade
stage for each box: the only per-box confidence an LBP cascade has, and what the
low_confidence rule and the "unsure" verifier policy read.

The cascade only finds upright faces, and tilted heads are common in illustrations. So the
image is also searched rotated by each of `angles` (on a canvas large enough to hold all of
it), every box is mapped back to the source, and boxes that are the same face across angles
are merged, an upright box winning (so a face found upright keeps the id it always had).
The rotated passes may look only for larger faces than the upright one: a cascade pass costs
about what its smallest window costs (OpenCV scales the image so that window is 24 px), the
faces lost to a tilt are mostly large ones, and each pass runs on a copy reduced to exactly
that scale, so turning it costs little.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

WINDOW = 24  # lbpcascade_animeface's window side in px


@dataclasses.dataclass(frozen=True)
class Detection:
    """A face: its upright box in source px and the angle the source was rotated by to find it.

    For `angle` 0 the box is the cascade's own. For a tilted face it is the cascade's box, of
    the same size, centred on where its centre lies in the source; the face inside it is
    upright after rotating the source by `angle` degrees about that centre (counter-clockwise,
    as `cv2.getRotationMatrix2D` turns it).
    """

    x: int
    y: int
    w: int
    h: int
    confidence: float | None  # None: proposed by animeface, which has no cascade level weight
    angle: float = 0.0
    found_by: str = "cascade"  # or "animeface" (`[facecrop] propose`)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


@dataclasses.dataclass(frozen=True)
class Search:
    """How to search one image: the cascade's parameters and the extra angles."""

    scale_factor: float
    min_neighbors: int
    min_size: int
    angles: tuple[float, ...] = ()  # besides 0; degrees
    rotated_min_size: int = 0  # smallest face (source px) the rotated passes look for; 0 = min_size
    rotated_scale_factor: float = 0.0  # the rotated passes' pyramid step; 0 = scale_factor
    rotated_min_neighbors: int = -1  # the rotated passes' min_neighbors; -1 = min_neighbors
    same_face: float = 0.5  # boxes whose centres lie closer than this share of their side are one face


def prepare_gray(image_bgr: np.ndarray) -> np.ndarray:
    """Grey + histogram equalisation, exactly as the cascade's author runs it."""
    return cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))


def detect(
    classifier, gray: np.ndarray, scale_factor: float, min_neighbors: int, min_size: int
) -> list[Detection]:
    """The upright pass alone, as the cascade's author runs it."""
    if gray.shape[0] < min_size or gray.shape[1] < min_size:
        return []
    boxes, _levels, weights = classifier.detectMultiScale3(
        gray,
        scaleFactor=scale_factor,
        minNeighbors=min_neighbors,
        minSize=(min_size, min_size),
        outputRejectLevels=True,
    )
    found = [
        Detection(int(b[0]), int(b[1]), int(b[2]), int(b[3]), round(float(wt), 4))
        for b, wt in zip(boxes, np.ravel(weights), strict=True)
    ]
    # OpenCV's order depends on its thread scheduling; sort so ids and rows are stable.
    return sorted(found, key=lambda d: (d.y, d.x, d.w, d.h))


def detect_all(classifier, gray: np.ndarray, search: Search) -> list[Detection]:
    """Every face at every angle, merged: the upright boxes, then the tilted faces they missed.

    Of several tilted boxes on one face the most confident is kept (ties: the smaller angle).
    """
    upright = detect(classifier, gray, search.scale_factor, search.min_neighbors, search.min_size)
    candidates = [det for angle in search.angles for det in detect_rotated(classifier, gray, angle, search)]
    candidates.sort(key=lambda d: (-d.confidence, abs(d.angle), d.angle, d.y, d.x))
    tilted: list[Detection] = []
    for det in candidates:
        if not any(same_face(det, kept, search.same_face) for kept in upright + tilted):
            tilted.append(det)
    return upright + sorted(tilted, key=lambda d: (d.y, d.x, d.w, d.h, d.angle))


def same_face(a: Detection, b: Detection, share: float) -> bool:
    """Centres closer than `share` of the smaller side, sides within 2x of each other."""
    (ax, ay), (bx, by) = a.center, b.center
    small, large = sorted((max(a.w, a.h), max(b.w, b.h)))
    return math.hypot(ax - bx, ay - by) < share * small and large <= 2 * small


def rotation(width: int, height: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The affine map that rotates a width x height image by `angle` onto a canvas that holds all of it."""
    center = (width / 2, height / 2)
    m = cv2.getRotationMatrix2D(center, angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    out_w = int(math.ceil(height * sin + width * cos))
    out_h = int(math.ceil(height * cos + width * sin))
    m[0, 2] += out_w / 2 - center[0]
    m[1, 2] += out_h / 2 - center[1]
    return m, (out_w, out_h)


def detect_rotated(classifier, gray: np.ndarray, angle: float, search: Search) -> list[Detection]:
    """The faces that stand upright once the image is rotated by `angle`, as boxes in source px."""
    min_face = max(search.min_size, search.rotated_min_size)
    scale = min(1.0, WINDOW / min_face)
    if scale < 1:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    height, width = gray.shape[:2]
    m, canvas = rotation(width, height, angle)
    rotated = cv2.warpAffine(gray, m, canvas, flags=cv2.INTER_LINEAR)
    min_size = max(WINDOW, int(round(min_face * scale)))
    inverse = cv2.invertAffineTransform(m)
    out = []
    step = search.rotated_scale_factor or search.scale_factor
    neighbors = search.min_neighbors if search.rotated_min_neighbors < 0 else search.rotated_min_neighbors
    for det in detect(classifier, rotated, step, neighbors, min_size):
        cx, cy = det.center
        sx = (inverse[0, 0] * cx + inverse[0, 1] * cy + inverse[0, 2]) / scale
        sy = (inverse[1, 0] * cx + inverse[1, 1] * cy + inverse[1, 2]) / scale
        w, h = int(round(det.w / scale)), int(round(det.h / scale))
        out.append(Detection(int(round(sx - w / 2)), int(round(sy - h / 2)), w, h, det.confidence, angle))
    return out
