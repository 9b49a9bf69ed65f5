"""Running lbpcascade_animeface and keeping every box with its confidence.

`detectMultiScale3` with `outputRejectLevels` returns the level weight of the last cascade
stage for each box: the only per-box confidence an LBP cascade has, and what the
low_confidence rule and the "unsure" verifier policy read.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Detection:
    x: int
    y: int
    w: int
    h: int
    confidence: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


def prepare_gray(image_bgr: np.ndarray) -> np.ndarray:
    """Grey + histogram equalisation, exactly as the cascade's author runs it."""
    return cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))


def detect(
    classifier, gray: np.ndarray, scale_factor: float, min_neighbors: int, min_size: int
) -> list[Detection]:
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
