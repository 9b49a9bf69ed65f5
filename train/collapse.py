"""The mode-collapse alarm: the share of distinct perceptual hashes among EMA samples.

It hashes with the dedup stage's pHash, the same notion of "the same face" that built the
dataset. An untrained generator is nearly constant (low share), so the alarm compares
against the best share seen so far in the run and fires on a sharp drop from it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.phash import phash_batch


def distinct_share(images_u8_nhwc: np.ndarray) -> float:
    hashes = phash_batch(images_u8_nhwc)
    return len(np.unique(hashes)) / max(1, len(hashes))


@dataclasses.dataclass
class CollapseAlarm:
    drop: float = 0.5  # warn when the share falls below drop x the best seen
    best: float = 0.0

    def check(self, share: float) -> bool:
        """Record a measurement; True means the alarm fires."""
        fired = self.best > 0 and share < self.drop * self.best
        self.best = max(self.best, share)
        return fired
