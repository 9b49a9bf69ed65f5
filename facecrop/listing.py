"""`python -m facecrop rejects`: the rejects in a terminal, with counts per reason and the rule."""

from __future__ import annotations

import collections
from typing import Any

from facecrop import rules
from facecrop.config import Thresholds


def rule_text(reason: str, thresholds: Thresholds) -> str:
    parts = [
        f"{row['value_key']} {row['op']} {row['threshold']}"
        for row in rules.threshold_table(thresholds)
        if row["reason"] == reason and row["op"]
    ]
    if parts:
        return " or ".join(parts)
    return "image-level" if reason in rules.IMAGE_REASONS else "set by a person (demote)"


def format_listing(rows: list[dict[str, Any]], thresholds: Thresholds, only: str | None) -> str:
    rejected = [row for row in rows if row["decision"] == "rejected"]
    counts = collections.Counter(row["reason"] for row in rejected)
    lines = [f"{len(rejected)} rejected of {len(rows)} rows; per reason:"]
    for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {reason:<15} {count:>7}   ({rule_text(reason, thresholds)})")
    shown = [row for row in rejected if only is None or row["reason"] == only]
    if only is not None:
        lines.append(f"\n{len(shown)} with reason {only}:")
    if shown:
        lines.append("")
    for row in shown:
        key, value = rules.deciding_value(row["reason"], row.get("values") or {}, thresholds)
        if key is None:
            value = (row.get("values") or {}).get("error")
        label = (
            f"{key}={value}"
            if key
            else (f"override: {row.get('override')}" if row.get("override") else str(value))
        )
        lines.append(
            f"{row['id']:<40} {row['reason']:<15} {label:<28} {row.get('path') or row.get('source_path') or ''}"
        )
    return "\n".join(lines)
