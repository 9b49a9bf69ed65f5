"""Perceptual hashes as packed integers, so that millions of comparisons are array operations.

Two stages use them: dedup finds near duplicates with them, and the trainer's mode-collapse
alarm hashes generated samples the same way the dataset was deduplicated. Both import this
module, so "the same face" means one thing in the whole pipeline.
Hashes wider than 64 bits (hash_size 16 -> 256 bits) are kept as rows of uint64 words,
big-endian bit order, so the Hamming distance is always XOR + popcount summed over words.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASH_FUNCTIONS = {"phash": imagehash.phash, "dhash": imagehash.dhash}


def pack_bits(bits: np.ndarray) -> int:
    """An imagehash boolean matrix (hash_size² bits, row-major) as one big-endian int."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes(), "big")


def pack_words(bits: np.ndarray) -> np.ndarray:
    """An imagehash boolean matrix as uint64 words (64 bits each, big-endian, zero-padded)."""
    flat = np.asarray(bits, dtype=bool).ravel()
    words = -(-flat.size // 64)
    padded = np.zeros(words * 64, dtype=bool)
    padded[: flat.size] = flat
    return np.frombuffer(np.packbits(padded).tobytes(), dtype=">u8").astype(np.uint64)


def hash_words(image: Image.Image, kind: str = "phash", hash_size: int = 8) -> np.ndarray:
    """imagehash's `kind` hash of one image as uint64 words ([1] for 64 bits, [4] for 256)."""
    return pack_words(HASH_FUNCTIONS[kind](image, hash_size=hash_size).hash)


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


def words_to_hex(words: np.ndarray, bits: int) -> str:
    """The hash as imagehash prints it (hex of the bit string), for manifests and reports."""
    value = 0
    for word in np.asarray(words, dtype=np.uint64).ravel():
        value = (value << 64) | int(word)
    value >>= len(np.asarray(words).ravel()) * 64 - bits
    return f"{value:0{-(-bits // 4)}x}"


def hex_to_words(text: str, bits: int) -> np.ndarray:
    """Inverse of `words_to_hex`."""
    words = -(-bits // 64)
    value = int(text, 16) << (words * 64 - bits)
    return np.array([(value >> (64 * (words - 1 - i))) & (2**64 - 1) for i in range(words)], dtype=np.uint64)
