"""A 256-bit dHash of the whole source image, recorded with every detection.

The dedup stage uses it to recognise two stored copies of one artwork (a re-encode or a
resize that the crawler stored twice because the bytes differ). The cascade places its
boxes slightly differently on each copy, so their face crops can be 10-15 pHash bits
apart, too far for crop-level matching; the whole images stay within a few bits.
It is computed here because this is the one place the full image is already decoded.
"""

from __future__ import annotations

import cv2
import imagehash
import numpy as np
from PIL import Image

HASH_SIZE = 16  # 256 bits: on ../shared/testdata copies of one artwork are 2-22 apart, different images >= 44
PRESHRINK = 256  # dHash looks at 17x16 pixels; shrinking with OpenCV first keeps a 4k image cheap


def source_dhash(image_bgr: np.ndarray) -> str:
    height, width = image_bgr.shape[:2]
    scale = PRESHRINK / max(height, width)
    if scale < 1:
        size = (max(HASH_SIZE + 1, round(width * scale)), max(HASH_SIZE, round(height * scale)))
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    rgb = Image.fromarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    return str(imagehash.dhash(rgb, hash_size=HASH_SIZE))
