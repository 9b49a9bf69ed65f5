"""Where the square crop around a detection lies, and how much of it falls outside the image.

The reference crop (`y-0.1h .. y+0.9h`, sliced straight from the array) produced empty or
shifted crops at the image edge because negative slice starts wrap around. Here the square
is computed in image coordinates first; the share that lies outside is measured, and only
a small share is filled by replicating the edge pixels, so a crop is always full and square.

A face found tilted (`angle` != 0) gets the same square, turned with the face: it is cut by
one rotation from the source at source resolution, so the crop comes out upright.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class CropSquare:
    x: int
    y: int
    side: int
    padding_share: float  # fraction of the square's area outside the image
    angle: float = 0.0  # degrees the source is turned (about the square's centre) to stand the face upright

    def as_box(self) -> list[int]:
        """The square before turning: where the crop lies in the source when `angle` is 0."""
        return [self.x, self.y, self.side, self.side]

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.side / 2, self.y + self.side / 2)


def crop_square(
    box: tuple[int, int, int, int],
    image_w: int,
    image_h: int,
    margin: float,
    shift: float,
    angle: float = 0.0,
) -> CropSquare:
    """The square around `box` (x, y, w, h), widened by `margin` per side and moved by `shift` * h
    towards the top of the face (which, for a face found at `angle`, is turned with it)."""
    x, y, w, h = box
    face = max(w, h)
    side = max(1, int(round(face * (1 + 2 * margin))))
    rad = math.radians(angle)
    cx = x + w / 2 - math.sin(rad) * shift * h
    cy = y + h / 2 + math.cos(rad) * shift * h
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    if angle:
        matrix = square_matrix((x0 + side / 2, y0 + side / 2), side, angle)
        return CropSquare(x0, y0, side, outside_share(matrix, side, image_w, image_h), angle)
    inside_w = max(0, min(x0 + side, image_w) - max(x0, 0))
    inside_h = max(0, min(y0 + side, image_h) - max(y0, 0))
    padding = 1.0 - (inside_w * inside_h) / float(side * side)
    return CropSquare(x0, y0, side, round(padding, 4))


def square_matrix(center: tuple[float, float], side: int, angle: float) -> np.ndarray:
    """The affine map from source px to the px of a `side` square centred on `center`, turned by `angle`."""
    m = cv2.getRotationMatrix2D(center, angle, 1.0)
    m[0, 2] += side / 2 - center[0]
    m[1, 2] += side / 2 - center[1]
    return m


def outside_share(matrix: np.ndarray, side: int, image_w: int, image_h: int) -> float:
    """Share of a turned square's pixels that map outside the image (sampled on a grid of at most 64x64)."""
    n = min(side, 64)
    coords = (np.arange(n) + 0.5) * side / n
    gx, gy = np.meshgrid(coords, coords)
    inverse = cv2.invertAffineTransform(matrix)
    sx = inverse[0, 0] * gx + inverse[0, 1] * gy + inverse[0, 2]
    sy = inverse[1, 0] * gx + inverse[1, 1] * gy + inverse[1, 2]
    inside = (sx >= 0) & (sx < image_w) & (sy >= 0) & (sy < image_h)
    return round(1.0 - float(inside.mean()), 4)


def warp_cut(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """A turned square at source resolution: one rotation (bicubic), edges replicated like box crops."""
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def cut(image: np.ndarray, square: CropSquare) -> np.ndarray:
    """The pixels of `square`, edge-replicated where it leaves the image; never empty, always square."""
    if square.angle:
        return warp_cut(image, square_matrix(square.center, square.side, square.angle), square.side)
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
