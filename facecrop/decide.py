"""Turning measured values into the automatic decision — in a worker, or again from stored values.

Only detection, cropping and measuring need the image. When a later run changes nothing but
thresholds or the verifier policy, each stored row is decided again from its `values`; the
source is re-processed only if a row now needs an animeface verdict it never got. The result
is the row a clean run with the new settings would write.
"""

from __future__ import annotations

from typing import Any

from facecrop import rules
from facecrop.config import FacecropConfig

VERIFIER_FIELDS = ("likelihood", "hair_color", "eye_colors")


def wants_verify(config: FacecropConfig, confidence: float) -> bool:
    return config.verifier == "all" or (
        config.verifier == "unsure" and confidence < config.verify_below_confidence
    )


def settle(row: dict[str, Any], failed: list[str]) -> None:
    """Write the automatic decision into a detection row."""
    row["values"]["failed"] = failed
    row["decision"] = row["auto_decision"] = "rejected" if failed else "accepted"
    row["reason"] = row["auto_reason"] = failed[0] if failed else None


def redecide(row: dict[str, Any], config: FacecropConfig) -> dict[str, Any] | None:
    """The row under `config`'s thresholds and verifier policy, or None if it needs verifying first."""
    if row.get("crop_box") is None:
        return row  # image-level rows depend only on settings in the fingerprint
    out = dict(row)
    values = {k: v for k, v in row["values"].items() if k not in ("failed", "likelihood")}
    out["values"] = values
    failed = rules.failed_rules(values, config.thresholds)
    if not failed and wants_verify(config, row["confidence"]):
        likelihood = row["values"].get("likelihood")
        if likelihood is None:
            return None
        values["likelihood"] = likelihood
        failed = rules.failed_rules(values, config.thresholds)
    else:
        # A clean run would not have verified this box, so it carries no verdict.
        out.update(dict.fromkeys(VERIFIER_FIELDS))
    settle(out, failed)
    return out
