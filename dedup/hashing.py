"""Perceptual hashes as packed integers, so that millions of comparisons are array operations.

Shared with the trainer's mode-collapse alarm (it hashes generated samples the same way
the dataset was deduplicated), so the function names here are a contract.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image


def pack_bits(bits: np.ndarray) -> int:
    """An imagehash boolean matrix (hash_size² bits, row-major) as one big-endian int."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes(), "big")


def phash64(image: Image.Image) -> np.uint64:
    """imagehash's 64-bit pHash of one image, as an unsigned 64-bit integer."""
    return np.uint64(pack_bits(imagehash.phash(image, hash_size=8).hash))


def phash_batch(images: np.ndarray) -> np.ndarray:
    """pHash of each image in a uint8 array [N, H, W, 3] (RGB) → uint64 array [N]."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
    return np.array([phash64(Image.fromarray(img)) for img in images], dtype=np.uint64)


def hamming(a: np.uint64 | int, b: np.uint64 | int) -> int:
    return int(np.bitwise_count(np.uint64(a) ^ np.uint64(b)))
