"""`rejects/index.html`: every reject, why, and the command that overrules it; opens from disk.

The page is one static file: the template (rejects_template.html) plus the rows as JSON in a
`<script type="application/json">` block. Everything is put on screen with `textContent`
and DOM attributes, never HTML strings, so a crawled title like `<script>` shows as text;
`<`, `>` and `&` are also escaped inside the JSON so it cannot close its own script block.
Thumbnails are lazy `<img>` links to the crop files and sections render in pages of 200,
so 10,000 rejects load as fast as 10.
"""

from __future__ import annotations

import collections
import json
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

from facecrop import rules
from facecrop.config import Thresholds
from pipeline import atomic
from pipeline.layout import Layout

PAGE_FIELDS = (
    "id",
    "reason",
    "auto_reason",
    "override",
    "source_size",
    "box",
    "crop_box",
    "size",
    "likelihood",
    "site",
    "url",
    "page_url",
)


def page_path(data_dir: Path) -> Path:
    return Layout(data_dir).rejects_page


def _card(row: dict[str, Any], thresholds: Thresholds, layout: Layout) -> dict[str, Any]:
    values = row.get("values") or {}
    key, value = rules.deciding_value(row["reason"], values, thresholds)
    meta = row.get("meta") or {}
    card = {field: row.get(field) for field in PAGE_FIELDS}
    card.update(
        value_key=key,
        value=value,
        values={k: v for k, v in values.items() if k != "failed"},
        failed=values.get("failed") or [],
        thumb=layout.link(layout.rejects_page, row["path"]) if row.get("path") else None,
        source=layout.link(layout.rejects_page, row["source_path"]) if row.get("source_path") else None,
        title=meta.get("title"),
        character=meta.get("character"),
        tags=meta.get("tags"),
    )
    return card


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element whatever strings it carries."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page_data(data_dir: Path, rows: list[dict[str, Any]], thresholds: Thresholds) -> dict[str, Any]:
    rejected = [row for row in rows if row["decision"] == "rejected"]
    counts = collections.Counter(row["reason"] for row in rejected)
    order = [reason for reason in rules.ORDER if reason in counts] + sorted(set(counts) - set(rules.ORDER))
    return {
        "data_arg": shlex.quote(str(data_dir)),
        "counts": {reason: counts[reason] for reason in order},
        "thresholds": rules.threshold_table(thresholds),
        "totals": {
            "detections": sum(1 for row in rows if row.get("crop_box") is not None),
            "accepted": sum(1 for row in rows if row["decision"] == "accepted"),
            "rejected": len(rejected),
        },
        "rejects": [_card(row, thresholds, Layout(data_dir)) for row in rejected],
    }


def build(data_dir: Path, rows: list[dict[str, Any]], thresholds: Thresholds) -> Path:
    template = resources.files("facecrop").joinpath("rejects_template.html").read_text(encoding="utf-8")
    html = template.replace("__FACECROP_DATA__", _script_json(page_data(data_dir, rows, thresholds)))
    target = page_path(data_dir)
    atomic.write_text(target, html)
    return target
