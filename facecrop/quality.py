"""Measurements that say whether a crop is worth training on: sharpness and colourfulness.

All are taken after resizing the crop to one working size, so a 500 px crop and a 70 px
crop are judged on the same scale (the Laplacian's variance otherwise grows with detail
that the 64x64 output never sees).
"""

from __future__ import annotations

import cv2
import numpy as np


def working_copy(crop_bgr: np.ndarray, size: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if crop_bgr.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop_bgr, (size, size), interpolation=interpolation)


def sharpness(work_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurry or upscaled-from-tiny crops."""
    gray = cv2.cvtColor(work_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def saturation(work_bgr: np.ndarray) -> float:
    """Mean HSV saturation in 0..1: near 0 for greyscale, manga pages and pencil sketches."""
    hsv = cv2.cvtColor(work_bgr, cv2.COLOR_BGR2HSV)
    return float(hsv[:, :, 1].mean() / 255.0)


def unique_colors(work_bgr: np.ndarray) -> int:
    """Distinct colours at 4 bits per channel: few for line art, flat fills and duotone prints."""
    q = (work_bgr >> 4).astype(np.int32)
    codes = (q[:, :, 0] << 8) | (q[:, :, 1] << 4) | q[:, :, 2]
    return int(np.unique(codes).size)


def measure(crop_bgr: np.ndarray, size: int) -> dict[str, float | int]:
    work = working_copy(crop_bgr, size)
    return {
        "sharpness": round(sharpness(work), 2),
        "saturation": round(saturation(work), 4),
        "unique_colors": unique_colors(work),
    }
