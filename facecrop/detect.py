"""Running lbpcascade_animeface at several angles and keeping every box with its confidence.

`detectMultiScale3` with `outputRejectLevels` returns the level weight of the last cascade
stage for each box: the only per-box confidence an LBP cascade has, and what the
low_confidence rule and the "unsure" verifier policy read.

The cascade only finds upright faces, and tilted heads are common in illustrations. So the
image is also searched turned by each of `angles` (about its centre, in its own frame),
every box is mapped back to the source, and boxes that are the same face across angles
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
    confidence: float
    angle: float = 0.0

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
    angles: tuple[float, ...]  # besides 0; degrees
    rotated_min_size: int  # smallest face (source px) the rotated passes look for
    rotated_scale_factor: float  # the rotated passes' pyramid step
    rotated_min_neighbors: int  # the rotated passes' grouping
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
    small, scale = reduced(gray, search) if search.angles else (gray, 1.0)
    candidates = [
        d for angle in search.angles for d in detect_rotated(classifier, small, scale, angle, search)
    ]
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


def reduced(gray: np.ndarray, search: Search) -> tuple[np.ndarray, float]:
    """The copy the rotated passes scan: reduced so their smallest face is the cascade's window."""
    scale = min(1.0, WINDOW / max(search.min_size, search.rotated_min_size))
    if scale < 1:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, scale


def detect_rotated(
    classifier, small: np.ndarray, scale: float, angle: float, search: Search
) -> list[Detection]:
    """The faces that stand upright once the image is turned by `angle`, as boxes in source px.

    The turned copy keeps the image's own frame (turned about its centre): the corners that turn
    out of it hold faces the clipped rule would mostly reject, and a frame grown to hold them
    would cost half as much again (measured: docs/facecrop.md, "How faces are found").
    """
    height, width = small.shape[:2]
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(small, m, (width, height), flags=cv2.INTER_LINEAR)
    inverse = cv2.invertAffineTransform(m)
    out = []
    for det in detect(classifier, turned, search.rotated_scale_factor, search.rotated_min_neighbors, WINDOW):
        cx, cy = det.center
        sx = (inverse[0, 0] * cx + inverse[0, 1] * cy + inverse[0, 2]) / scale
        sy = (inverse[1, 0] * cx + inverse[1, 1] * cy + inverse[1, 2]) / scale
        w, h = int(round(det.w / scale)), int(round(det.h / scale))
        out.append(Detection(int(round(sx - w / 2)), int(round(sy - h / 2)), w, h, det.confidence, angle))
    return out
