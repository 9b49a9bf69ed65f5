"""The `[dedup]` section: every knob of the stage, with the defaults docs/dedup.md documents.

The defaults were chosen on the shared getchu/mlds faces (see docs/dedup.md): a 64-bit pHash
at distance <= 4 catches every JPEG re-encode (q 50-95) and every down/up-scale, while the
closest genuinely different faces sit at 6 or more. Changing a hashing knob forces a re-hash,
changing a matching knob forces a re-search; both are detected from these values.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pipeline.config import build, section


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    # Perceptual hash used for near duplicates ("phash" = DCT hash, "dhash" = gradient hash).
    hash: Literal["phash", "dhash"] = "phash"
    # Side of the hash matrix: 8 -> 64-bit hash, 16 -> 256-bit (finer, slower, needs a larger threshold).
    hash_size: int = 8
    # A pair is a near duplicate when the Hamming distance of the main hashes is <= threshold.
    threshold: int = 4
    # When >= 0, a near pair must ALSO have a 64-bit dHash distance <= this (a second opinion that lets
    # a looser `threshold` catch 1-px re-crops without merging different characters). -1 = off.
    confirm_dhash: int = -1
    # Colour guard: a near pair is rejected when the faces' mean chroma difference (4x4 grid of Cr/Cb,
    # 0-255 scale) exceeds this - pHash is grayscale and cannot tell white hair from green. < 0 = off.
    max_colour_distance: float = 10.0
    # Low-information guard: images whose grayscale standard deviation (on the output-size face, 0-255) is below this
    # are flat and only merge with pixel-identical copies.
    min_contrast: float = 3.0
    # Low-information guard: a hash with fewer than this fraction of 1-bits (or of 0-bits) comes from a
    # flat or two-tone image (e.g. pHash 8000000000000000) and only merges with pixel-identical copies.
    min_bit_fraction: float = 0.25
    # Which member of a duplicate cluster is kept: "largest" = largest source face, then sharpest;
    # "sharpest" = sharpest, then largest. Ties always break on the smallest crop id.
    keep: Literal["largest", "sharpest"] = "largest"
    # Side of the output PNGs and shard rows (the files keep the name faces64 whatever this is).
    output_size: int = 64
    # Anti-aliased downscale filter: "area" (box average) or "lanczos".
    resize_filter: Literal["area", "lanczos"] = "area"
    # Same artwork stored twice (a re-encode or resize the crawler kept because the bytes differ): two
    # crops are duplicates when their SOURCE images' 256-bit dHashes (recorded by facecrop) are within
    # this distance and their boxes, in coordinates relative to the source size, overlap by at least
    # `same_artwork_min_iou`. Catches the cascade's box jitter between copies, which moves the crops'
    # pHash by 10-15 bits. Measured on ../shared/testdata: copies of one artwork 2-22, different
    # images >= 44. -1 = off.
    same_artwork: int = 24
    same_artwork_min_iou: float = 0.5
    # Hashing processes; 0 = one per CPU core.
    workers: int = 0

    def __post_init__(self) -> None:
        bits = self.hash_size * self.hash_size
        if not 4 <= self.hash_size <= 32:
            raise ValueError(f"hash_size must be between 4 and 32, got {self.hash_size}")
        if not 0 <= self.threshold < bits // 2:
            raise ValueError(
                f"threshold must be between 0 and {bits // 2 - 1} for a {bits}-bit hash, got {self.threshold}"
            )
        if not -1 <= self.confirm_dhash < 32:
            raise ValueError(f"confirm_dhash must be -1 (off) or between 0 and 31, got {self.confirm_dhash}")
        if not 0.0 <= self.min_bit_fraction < 0.5:
            raise ValueError(f"min_bit_fraction must be in [0, 0.5), got {self.min_bit_fraction}")
        if self.min_contrast < 0:
            raise ValueError(f"min_contrast must be >= 0, got {self.min_contrast}")
        if not 8 <= self.output_size <= 1024:
            raise ValueError(f"output_size must be between 8 and 1024, got {self.output_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not -1 <= self.same_artwork < 128:
            raise ValueError(f"same_artwork must be -1 (off) or between 0 and 127, got {self.same_artwork}")
        if not 0.0 < self.same_artwork_min_iou <= 1.0:
            raise ValueError(f"same_artwork_min_iou must be in (0, 1], got {self.same_artwork_min_iou}")

    @property
    def min_crop_side(self) -> int:
        """Smallest crop accepted: the output is never upscaled by more than 2x."""
        return (self.output_size + 1) // 2

    def hashing_key(self) -> dict[str, object]:
        """The settings that change a fingerprint; a change means every crop is hashed again."""
        return {
            "hash": self.hash,
            "hash_size": self.hash_size,
            "output_size": self.output_size,
            "resize_filter": self.resize_filter,
            "version": 3,
        }

    def matching_key(self) -> dict[str, object]:
        """The settings that change which pairs are near duplicates; a change means a fresh search."""
        return {
            "threshold": self.threshold,
            "confirm_dhash": self.confirm_dhash,
            "max_colour_distance": self.max_colour_distance,
            "min_contrast": self.min_contrast,
            "min_bit_fraction": self.min_bit_fraction,
            **self.hashing_key(),
        }


def load(config: dict) -> DedupConfig:
    """The `[dedup]` table of an already-parsed config file as a checked dataclass (ConfigError otherwise)."""
    return build(DedupConfig, section(config, "dedup"), "[dedup]")
