"""The `[facecrop]` table of dataset.toml as dataclasses with measured defaults.

Defaults come from measurements on ../shared/testdata (see docs/facecrop.md). Every
setting that changes what detection, cropping or measuring produce goes into `fingerprint`,
so a re-run re-reads exactly the images whose result could differ and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

from facecrop.align import AlignSettings
from facecrop.detect import Search
from pipeline.config import build, section

# Bump when the code changes what a run produces for the same settings.
ALGORITHM_VERSION = 5


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """One threshold per reject reason; a crop fails a rule when its value crosses the threshold."""

    min_face: int = 64  # too_small: face (detection box) side in source px below this
    max_padding: float = 0.25  # clipped: share of the crop square outside the image above this
    max_faces: int = 12  # crowded: more faces than this in one image (collages, contact sheets)
    min_confidence: float = 0.25  # low_confidence: cascade level weight below this
    min_saturation: float = 0.05  # low_color: mean HSV saturation (0..1) below this ...
    min_colors: int = 32  # ... or fewer distinct 4-bit-per-channel colours than this
    min_sharpness: float = 100.0  # blurry: variance of the Laplacian at `work_size` below this
    min_likelihood: float = 0.5  # not_verified: animeface likelihood below this (or no overlapping face)


@dataclasses.dataclass(frozen=True)
class FacecropConfig:
    """Everything `python -m facecrop` can be told; see docs/facecrop.md for why each default."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    # Faces under 64 px are useless for a 64x64 dataset and skipping them makes the cascade ~3.6x faster.
    min_size: int = 64
    # Tilted heads: the image is searched again turned by each of these angles (degrees), for faces of
    # angle_min_size px or more, with their own pyramid step and min_neighbors (a coarser, cheaper
    # search is a measured trade of recall for speed: docs/facecrop.md, "How faces are found").
    angles: tuple[float, ...] = (-25.0, 25.0)
    angle_min_size: int = 80
    angle_scale_factor: float = 1.15
    angle_min_neighbors: int = 3
    margin: float = 0.25  # crop side = face side * (1 + 2 * margin)
    shift: float = -0.1  # move the crop centre by shift * face side (negative = up, towards the hair)
    work_size: int = (
        128  # side the crop is resized to before measuring blur/colour, so values compare across sizes
    )
    max_pixels: int = 64_000_000  # images larger than this are rejected as too_large instead of decoded
    verifier: Literal["all", "unsure", "off"] = "all"
    verify_below_confidence: float = 3.0  # policy "unsure": verify only boxes under this level weight
    verify_margin: float = 0.25  # context around the box handed to animeface
    verify_tight: bool = True  # a second look at the box alone (no margin) when the first is not certain
    verify_size: int = 112  # side (px) of that region for animeface; it is resolution-sensitive
    workers: int = 0  # processes; 0 = one per CPU core
    # Eye-aligned crops (facecrop.align): "off" = the detection square, as always; "eyes" = rotated and
    # scaled on animeface's eyes, falling back to the square (recorded in the row's `align`).
    align: Literal["off", "eyes"] = "off"
    align_eye_distance: float = 0.24  # eye distance as a share of the crop side (0.235 = an average box crop)
    align_eye_x: float = 0.5  # eye midpoint, share of the side from the left ...
    align_eye_y: float = 0.52  # ... and from the top (0.515 = an average box crop with shift -0.1)
    align_max_tilt: float = 30.0  # degrees; steeper eye lines keep the box crop (fallback "tilt")
    align_min_eye_ratio: float = 0.2  # plausible eye distance / box side: outside it, fallback "eye_distance"
    align_max_eye_ratio: float = 0.55
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        checks = [
            (self.scale_factor > 1.0, "scale_factor must be > 1.0"),
            (self.min_neighbors >= 0, "min_neighbors must be >= 0"),
            (self.min_size >= 24, "min_size must be >= 24 (the cascade's window is 24x24)"),
            (
                all(0 < abs(a) < 90 for a in self.angles) and len(set(self.angles)) == len(self.angles),
                "angles must be distinct, non-zero and within -90..90 degrees (0, upright, is always searched)",
            ),
            (self.angle_scale_factor > 1.0, "angle_scale_factor must be > 1.0"),
            (self.angle_min_neighbors >= 0, "angle_min_neighbors must be >= 0"),
            (self.angle_min_size >= 24, "angle_min_size must be >= 24 (the cascade's window is 24x24)"),
            (self.margin >= 0, "margin must be >= 0"),
            (-1.0 <= self.shift <= 1.0, "shift must be within -1..1"),
            (self.work_size >= 16, "work_size must be >= 16"),
            (self.max_pixels > 0, "max_pixels must be > 0"),
            (self.verify_margin >= 0, "verify_margin must be >= 0"),
            (self.verify_size >= 32, "verify_size must be >= 32"),
            (self.workers >= 0, "workers must be >= 0"),
            (0 <= self.thresholds.max_padding < 1, "thresholds.max_padding must be within 0..1"),
            (0.05 <= self.align_eye_distance <= 0.9, "align_eye_distance must be within 0.05..0.9"),
            (0 <= self.align_eye_x <= 1, "align_eye_x must be within 0..1"),
            (0 <= self.align_eye_y <= 1, "align_eye_y must be within 0..1"),
            (0 <= self.align_max_tilt <= 90, "align_max_tilt must be within 0..90 degrees"),
            (
                0 < self.align_min_eye_ratio < self.align_max_eye_ratio,
                "align_min_eye_ratio must be > 0 and < align_max_eye_ratio",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def fingerprint(self, cascade_sha256: str) -> str:
        """A key for "must this source's image be looked at again?".

        Left out: `workers` (no effect on results), and the thresholds and verifier policy,
        which `decide.redecide` re-applies to stored measurements without the image. With
        `align = "off"` the align_* keys are left out too, so switching alignment on re-reads every
        image (every crop changes) and switching it off again returns to the old fingerprint.
        """
        settings = dataclasses.asdict(self)
        for key in ("workers", "thresholds", "verifier", "verify_below_confidence"):
            settings.pop(key)
        if self.align == "off":  # the box crop ignores every align_* key; data made before them stays current
            for key in [k for k in settings if k.startswith("align")]:
                settings.pop(key)
        else:  # the aligned square falls back when it is clipped: the padding limit shapes the crop
            settings["align_max_padding"] = self.thresholds.max_padding
        if not self.angles:  # no rotated pass, so its face size changes nothing
            for key in ("angle_min_size", "angle_scale_factor", "angle_min_neighbors"):
                settings.pop(key)
        settings["algorithm"] = ALGORITHM_VERSION
        settings["cascade"] = cascade_sha256
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def verify_margins(self) -> tuple[float, ...]:
        """The margins animeface looks at a box with, in order (`verify.verify_views`)."""
        return (
            (self.verify_margin, 0.0) if self.verify_tight and self.verify_margin else (self.verify_margin,)
        )

    def search(self) -> Search:
        """The detection settings as `facecrop.detect` takes them."""
        return Search(
            self.scale_factor,
            self.min_neighbors,
            self.min_size,
            tuple(self.angles),
            self.angle_min_size,
            self.angle_scale_factor,
            self.angle_min_neighbors,
        )

    def align_settings(self) -> AlignSettings:
        """The align_* keys as `facecrop.align` takes them."""
        return AlignSettings(
            self.align_eye_distance,
            self.align_eye_x,
            self.align_eye_y,
            self.align_max_tilt,
            (self.align_min_eye_ratio, self.align_max_eye_ratio),
            self.thresholds.max_padding,
        )


def load(config: dict) -> FacecropConfig:
    """The `[facecrop]` table of an already-parsed config file as a checked dataclass (ConfigError otherwise)."""
    return build(FacecropConfig, section(config, "facecrop"), "[facecrop]")
