"""The closing summary of `make dataset`: what every stage produced, read from their files.

It reads only the stages' manifests (the same contract a person can inspect), so the
numbers it prints are the numbers on disk, not a stage's own idea of what it did.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.atomic import read_jsonl


def dataset_overview(data_dir: str | Path) -> dict[str, Any]:
    data = Path(data_dir)
    raw = read_jsonl(data / "raw" / "manifest.jsonl")
    crops = read_jsonl(data / "crops" / "manifest.jsonl")
    faces = read_jsonl(data / "faces64" / "manifest.jsonl")
    shard_meta_path = data / "shards" / "faces64.json"
    shard_count = None
    if shard_meta_path.exists():
        shard_count = json.loads(shard_meta_path.read_text(encoding="utf-8")).get("count")

    detections = [row for row in crops if row.get("box")]
    accepted = [row for row in crops if row.get("decision") == "accepted"]
    rejected = Counter(row.get("reason") or "unknown" for row in crops if row.get("decision") == "rejected")
    duplicates_removed = sum(max(int(row.get("cluster_size", 1)) - 1, 0) for row in faces)

    overview: dict[str, Any] = {
        "images crawled": len(raw),
        "images with a face": len({row.get("source_sha256") for row in detections}),
        "faces found": len(detections),
        "accepted": len(accepted),
        "rejected": sum(rejected.values()),
    }
    if rejected:
        overview["rejected by reason"] = dict(sorted(rejected.items()))
    overview["duplicates removed"] = duplicates_removed
    overview["faces in the shard"] = shard_count if shard_count is not None else "no shard"
    for label, path in (("rejects page", data / "rejects" / "index.html"), ("dedup report", data / "dedup" / "report.html")):
        overview[label] = str(path) if path.exists() else f"{path} (not written)"
    return overview
