"""The closing summary of `make dataset`: what every stage produced, read from their files.

It reads only the stages' manifests and the shard's sidecar (the same contracts a person can
inspect, parsed by `pipeline.manifests` and `pipeline.shard`), so the numbers it prints are
the numbers on disk, not a stage's own idea of what it did.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pipeline import atomic
from pipeline.layout import Layout
from pipeline.manifests import CropRow, FaceRow, read_rows
from pipeline.shard import shard_count


def duplicates_removed(layout: Layout) -> int:
    """Members dropped in favour of a kept face, from faces64/manifest.jsonl's cluster sizes."""
    faces, _ = read_rows(layout.faces_manifest, FaceRow.parse)
    return sum(max(face.cluster_size - 1, 0) for face in faces)


def dataset_overview(data_dir: str | Path) -> dict[str, Any]:
    layout = Layout(Path(data_dir))
    raw = atomic.read_jsonl(layout.raw_manifest)
    crops, _ = read_rows(layout.crops_manifest, CropRow.parse)
    detections = [crop for crop in crops if crop.is_detection]
    rejected = Counter(crop.reason or "unknown" for crop in crops if crop.decision == "rejected")
    count = shard_count(layout.data)

    overview: dict[str, Any] = {
        "images crawled": len(raw),
        "images with a face": len({crop.source_sha256 for crop in detections}),
        "faces found": len(detections),
        "accepted": sum(1 for crop in crops if crop.accepted),
        "rejected": sum(rejected.values()),
    }
    if rejected:
        overview["rejected by reason"] = dict(sorted(rejected.items()))
    overview["duplicates removed"] = duplicates_removed(layout)
    overview["faces in the shard"] = count if count is not None else "no shard"
    for label, path in (("rejects page", layout.rejects_page), ("dedup report", layout.dedup_report)):
        overview[label] = str(path) if path.exists() else f"{path} (not written)"
    return overview
