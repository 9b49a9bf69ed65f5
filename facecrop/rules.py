"""Reject reasons: each a code, the measured value it reads and the threshold it compares to.

A crop gets the first failing reason in `ORDER` (cheapest and most certain first) as its
`reason`, and every failing reason in `values["failed"]`, so the rejects page can show a
crop that is both blurry and grey under either heading's explanation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from facecrop.config import Thresholds


@dataclasses.dataclass(frozen=True)
class Rule:
    reason: str
    value_key: str  # key in a manifest row's `values`
    threshold_key: str  # field of Thresholds
    fails_below: bool  # True: value < threshold fails; False: value > threshold fails
    meaning: str


IMAGE_REASONS = {
    "decode_error": "the file is missing, empty, truncated or not an image",
    "too_large": "the image has more pixels than max_pixels (decompression-bomb guard)",
    "process_error": "an unexpected error while processing the image (message in values.error)",
}

RULES = (
    Rule("crowded", "faces_in_image", "max_faces", False, "faces found in the same image"),
    Rule("too_small", "face_side", "min_face", True, "face side in source px"),
    Rule("clipped", "padding", "max_padding", False, "share of the crop square outside the image"),
    Rule("low_confidence", "confidence", "min_confidence", True, "cascade level weight"),
    Rule("low_color", "saturation", "min_saturation", True, "mean HSV saturation"),
    Rule("low_color", "unique_colors", "min_colors", True, "distinct 4-bit colours"),
    Rule("blurry", "sharpness", "min_sharpness", True, "variance of the Laplacian at work_size"),
    Rule("not_verified", "likelihood", "min_likelihood", True, "animeface likelihood on the box"),
)

ORDER = tuple(IMAGE_REASONS) + tuple(dict.fromkeys(rule.reason for rule in RULES))


def failed_rules(values: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """Every reason whose rule fails; a rule whose value was not measured (None) cannot fail."""
    failed: list[str] = []
    for rule in RULES:
        value = values.get(rule.value_key)
        if value is None:
            continue
        limit = getattr(thresholds, rule.threshold_key)
        crossed = value < limit if rule.fails_below else value > limit
        if crossed and rule.reason not in failed:
            failed.append(rule.reason)
    return failed


def threshold_table(thresholds: Thresholds) -> list[dict[str, Any]]:
    """Rows for the rejects page and terminal listing: reason, value, comparison, threshold."""
    rows = [
        {"reason": reason, "value_key": None, "op": None, "threshold": None, "meaning": meaning}
        for reason, meaning in IMAGE_REASONS.items()
    ]
    for rule in RULES:
        rows.append(
            {
                "reason": rule.reason,
                "value_key": rule.value_key,
                "op": "<" if rule.fails_below else ">",
                "threshold": getattr(thresholds, rule.threshold_key),
                "meaning": rule.meaning,
            }
        )
    return rows


def deciding_value(reason: str, values: dict[str, Any], thresholds: Thresholds) -> tuple[str | None, Any]:
    """The measurement that put a crop under `reason` (for low_color: whichever of its two rules failed)."""
    candidates = [rule for rule in RULES if rule.reason == reason]
    for rule in candidates:
        value = values.get(rule.value_key)
        limit = getattr(thresholds, rule.threshold_key)
        if value is not None and (value < limit if rule.fails_below else value > limit):
            return rule.value_key, value
    if candidates:
        return candidates[0].value_key, values.get(candidates[0].value_key)
    return None, None
