"""DATA/raw/manifest.jsonl, the only file facecrop reads from the crawler.

It is regenerated from SQLite as a whole (atomic replace) at checkpoints and at the
end of a run, one row per stored image sorted by sha256, with provenance in a fixed
order, so a killed-and-resumed crawl writes the same manifest as an uninterrupted one
(apart from the fetched_at timestamps).
"""

from __future__ import annotations

from pathlib import Path

from crawler.state import State
from pipeline import atomic

MANIFEST = Path("raw") / "manifest.jsonl"


def write_manifest(state: State, data_dir: Path) -> int:
    provenance = state.provenance()
    rows = []
    for image in state.images():
        sources = provenance.get(image["sha256"], [])
        if not sources:  # cannot happen: an image and its first item are committed together
            continue
        first = sources[0]
        rows.append(
            {
                **image,
                "site": first["site"],
                "url": first["url"],
                "page_url": first["page_url"],
                "fetched_at": first["fetched_at"],
                "meta": first["meta"],
                "provenance": sources,
            }
        )
    return atomic.write_jsonl(data_dir / MANIFEST, rows)
