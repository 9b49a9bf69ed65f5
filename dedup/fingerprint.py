"""Everything the stage needs to know about one crop, computed once in a worker process.

One decode per crop: the square crop becomes the output-size thumbnail (anti-aliased, never
upscaled more than 2x), and the hashes, the low-information measure and the sharpness are
all taken from that thumbnail - the same pixels that go into the shard and that the trainer's
mode-collapse alarm hashes. The worker writes no file: the thumbnail's pixels go back to the
main process, which appends them to one cache file (a file per crop cost more than hashing). The pixel digest is taken at source resolution, so "exact
duplicate" means identical decoded pixels, whatever the file bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.phash import hash_words, words_to_hex

FILTERS = {"area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}


@dataclasses.dataclass(frozen=True)
class Job:
    """What a worker needs: plain values only, so it pickles cheaply."""

    crop_id: str
    crop_path: str
    hash_kind: str
    hash_size: int
    output_size: int
    resize_filter: str
    min_side: int


@dataclasses.dataclass
class Fingerprint:
    crop_id: str
    error: str | None = None  # reason code + detail when the crop cannot be used
    pixel_sha256: str = ""
    width: int = 0
    height: int = 0
    hash_hex: str = ""
    dhash_hex: str = ""
    gray_std: float = 0.0
    sharpness: float = 0.0
    thumb_sha256: str = ""
    colour_hex: str = ""  # 4x4 grid of mean (Cr, Cb): what a grayscale hash cannot see
    thumb: bytes = b""  # the output-size RGB pixels, row-major; the main process files them in the cache


def pixel_digest(array: np.ndarray) -> str:
    """sha256 of decoded pixels plus their shape: equal iff the images are pixel-identical."""
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load_rgb(path: str | Path) -> Image.Image:
    """Decode fully (so a truncated file fails here, not later) and flatten to RGB.

    Transparent pixels are composited on white: an RGBA crop and its opaque re-save must
    look alike to a person, and so to the hash.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return im.convert("RGB")


def square(image: Image.Image) -> Image.Image:
    """Crops are square by contract; a non-square one is centre-cropped rather than squashed."""
    w, h = image.size
    if w == h:
        return image
    side = min(w, h)
    return image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))


def thumbnail(image: Image.Image, size: int, resize_filter: str) -> Image.Image:
    return (
        ImageOps.fit(image, (size, size), method=FILTERS[resize_filter])
        if image.size != (size, size)
        else image
    )


def colour_signature(rgb: np.ndarray) -> np.ndarray:
    """Mean chroma (Cr, Cb) on a 4x4 grid, 32 bytes.

    pHash sees only luminance layout, so two characters drawn alike but with white and
    green hair can be 4 bits apart. Chroma without luma barely moves under re-encoding,
    rescaling or a brightness change, so it separates exactly those false pairs.
    """
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    grid = cv2.resize(ycc, (4, 4), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grid[:, :, 1:], dtype=np.uint8).ravel()


def colour_distance(a_hex: str, b_hex: str) -> float:
    """Mean absolute chroma difference (0-255 scale) of two `colour_signature`s."""
    a = np.frombuffer(bytes.fromhex(a_hex), np.uint8).astype(np.int16)
    b = np.frombuffer(bytes.fromhex(b_hex), np.uint8).astype(np.int16)
    return float(np.abs(a - b).mean())


def compute(job: Job) -> Fingerprint:
    """Fingerprint one crop; bad input becomes a reason, never an exception."""
    try:
        image = square(load_rgb(job.crop_path))
    except FileNotFoundError:
        return Fingerprint(job.crop_id, error=f"missing: {job.crop_path} does not exist")
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        return Fingerprint(job.crop_id, error=f"unreadable: {exc.__class__.__name__}: {exc}"[:300])
    pixels = np.asarray(image)
    side = image.size[0]
    if side < job.min_side:
        return Fingerprint(
            job.crop_id,
            error=f"too_small: {side}px crop would be upscaled more than 2x to {job.output_size}px",
            pixel_sha256=pixel_digest(pixels),
            width=side,
            height=side,
        )
    thumb = thumbnail(image, job.output_size, job.resize_filter)
    thumb_pixels = np.asarray(thumb)
    gray = cv2.cvtColor(thumb_pixels, cv2.COLOR_RGB2GRAY)
    bits = job.hash_size * job.hash_size
    return Fingerprint(
        crop_id=job.crop_id,
        pixel_sha256=pixel_digest(pixels),
        width=side,
        height=side,
        hash_hex=words_to_hex(hash_words(thumb, job.hash_kind, job.hash_size), bits),
        dhash_hex=words_to_hex(hash_words(thumb, "dhash", 8), 64),
        gray_std=float(cv2.meanStdDev(gray)[1][0, 0]),
        sharpness=float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_64F))[1][0, 0] ** 2),
        thumb_sha256=pixel_digest(thumb_pixels),
        colour_hex=colour_signature(thumb_pixels).tobytes().hex(),
        thumb=thumb_pixels.tobytes(),
    )
