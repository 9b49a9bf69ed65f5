"""Where the square crop around a detection lies, and how much of it falls outside the image.

The reference crop (`y-0.1h .. y+0.9h`, sliced straight from the array) produced empty or
shifted crops at the image edge because negative slice starts wrap around. Here the square
is computed in image coordinates first; the share that lies outside is measured, and only
a small share is filled by replicating the edge pixels, so a crop is always full and square.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class CropSquare:
    x: int
    y: int
    side: int
    padding_share: float  # fraction of the square's area outside the image

    def as_box(self) -> list[int]:
        return [self.x, self.y, self.side, self.side]


def crop_square(
    box: tuple[int, int, int, int], image_w: int, image_h: int, margin: float, shift: float
) -> CropSquare:
    """The square around `box` (x, y, w, h), widened by `margin` per side and moved by `shift` * h."""
    x, y, w, h = box
    face = max(w, h)
    side = max(1, int(round(face * (1 + 2 * margin))))
    cx = x + w / 2
    cy = y + h / 2 + shift * h
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    inside_w = max(0, min(x0 + side, image_w) - max(x0, 0))
    inside_h = max(0, min(y0 + side, image_h) - max(y0, 0))
    padding = 1.0 - (inside_w * inside_h) / float(side * side)
    return CropSquare(x0, y0, side, round(padding, 4))


def cut(image: np.ndarray, square: CropSquare) -> np.ndarray:
    """The pixels of `square`, edge-replicated where it leaves the image; never empty, always square."""
    h, w = image.shape[:2]
    x0, y0, side = square.x, square.y, square.side
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"crop square {square} lies entirely outside a {w}x{h} image")
    region = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, borderType=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(region)
