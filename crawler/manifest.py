"""DATA/raw/manifest.jsonl, the only file facecrop reads from the crawler.

It is regenerated from SQLite as a whole (atomic replace) at checkpoints and at the
end of a run: one row per stored image sorted by sha256, its provenance in a fixed
order (config order of the sources, then each source's listing order), so a
killed-and-resumed crawl writes the same manifest as an uninterrupted one apart from
the fetched_at timestamps. The file is only replaced when its content changes, so a
re-run with nothing new leaves it untouched (same bytes, same mtime).
"""

from __future__ import annotations

import json
from pathlib import Path

from crawler.state import State
from pipeline import atomic
from pipeline.layout import Layout


def write_manifest(state: State, data_dir: Path, source_order: list[str]) -> int:
    """Write the manifest if it changed; returns the number of rows."""
    provenance = state.provenance(source_order)
    lines = []
    for image in state.images():
        sources = provenance.get(image["sha256"], [])
        if not sources:  # cannot happen: an image and its first item are committed together
            continue
        first = sources[0]
        row = {
            **image,
            "site": first["site"],
            "url": first["url"],
            "page_url": first["page_url"],
            "fetched_at": first["fetched_at"],
            "meta": first["meta"],
            "provenance": sources,
        }
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    text = "".join(lines)
    path = Layout(data_dir).raw_manifest
    try:
        unchanged = path.read_text(encoding="utf-8") == text
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        atomic.write_text(path, text)
    return len(lines)
