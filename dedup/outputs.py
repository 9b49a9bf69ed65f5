"""Everything dedup publishes, from the clusters it found: faces64/, dropped.jsonl, the shard, the report.

`run` decides which face each cluster keeps; this module turns that decision into files,
each written whole through temp + rename, and each left untouched when its content did not
change, so a re-run with nothing new rewrites nothing. The row formats are the contracts in
`pipeline.manifests` (faces64 rows) and `pipeline.shard` (the shard and its sidecar).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from dedup import faces, report
from dedup.clusters import Cluster
from dedup.config import DedupConfig
from dedup.fingerprint import colour_distance, pixel_digest
from dedup.inputs import Inputs
from dedup.thumbcache import ThumbCache
from pipeline import atomic, shard
from pipeline.errors import PipelineError
from pipeline.layout import Layout, rel_face
from pipeline.manifests import CropRow, FaceRow
from pipeline.phash import hex_to_words

Prints = dict[str, dict[str, Any]]  # crop id -> its fingerprint record (dedup.state)
ArtworkLinks = dict[tuple[str, str], tuple[int, float]]  # (id, id) -> (source dHash distance, box IoU)


@dataclasses.dataclass
class Described:
    """The clusters as rows and views: what the files below are written from."""

    faces: list[FaceRow]
    dropped: list[dict[str, Any]]  # dedup/dropped.jsonl rows (written sorted by reason, id)
    views: list[report.ClusterView]  # clusters with more than one member, for the report

    def dropped_by_reason(self) -> dict[str, int]:
        return dict(Counter(row["reason"] for row in self.dropped))


def relation(
    member: dict, kept: dict, cfg: DedupConfig, artwork: tuple[int, float] | None = None
) -> tuple[str, str, int | None, int | None]:
    """(label for the report, reason code, hash distance, dHash distance) of a member to its keeper."""
    if member["pixel_sha256"] == kept["pixel_sha256"]:
        return "exact duplicate", "exact_duplicate", 0, 0
    bits = cfg.hash_size * cfg.hash_size
    d = int(
        np.bitwise_count(hex_to_words(member["hash_hex"], bits) ^ hex_to_words(kept["hash_hex"], bits)).sum()
    )
    d2 = int(
        np.bitwise_count(hex_to_words(member["dhash_hex"], 64) ^ hex_to_words(kept["dhash_hex"], 64)).sum()
    )
    colour = colour_distance(member["colour_hex"], kept["colour_hex"])
    if artwork is not None and d > cfg.threshold:
        source_distance, overlap = artwork
        return (
            f"same artwork stored twice (source dHash-256 {source_distance}, box IoU {overlap:.2f}; "
            f"{cfg.hash} {d}, colour {colour:.1f})",
            "same_artwork",
            d,
            d2,
        )
    return f"near duplicate ({cfg.hash} {d}, dHash {d2}, colour {colour:.1f})", "near_duplicate", d, d2


def face_row(cluster: Cluster, keeper: CropRow, rec: dict[str, Any], cfg: DedupConfig) -> FaceRow:
    return FaceRow(
        id=cluster.kept,
        path=rel_face(cluster.kept),
        source_sha256=keeper.source_sha256,
        source_path=keeper.source_path,
        cluster_id=cluster.cluster_id,
        cluster_size=len(cluster.members),
        duplicates=cluster.members[1:],
        kept_because=cluster.why,
        hashes={
            cfg.hash: rec["hash_hex"],
            "dhash": rec["dhash_hex"],
            "pixel_sha256": rec["pixel_sha256"],
            "thumb_sha256": rec["thumb_sha256"],
        },
        hash_kind=cfg.hash,
        hash_bits=cfg.hash_size * cfg.hash_size,
        face_area=keeper.face_area,
        crop_side=rec["width"],
        sharpness=round(rec["sharpness"], 3),
        hair_color=keeper.hair_color,
        eye_colors=keeper.eye_colors,
    )


def cluster_view(
    cluster: Cluster,
    inputs: Inputs,
    prints: Prints,
    artwork: ArtworkLinks,
    cfg: DedupConfig,
    dropped: list[dict[str, Any]],
) -> report.ClusterView:
    """The report's view of one duplicate cluster; each dropped member's row is added to `dropped`."""
    crops = {c.id: c for c in inputs.crops}
    kept = prints[cluster.kept]
    members = []
    for crop_id in cluster.members:
        crop = crops[crop_id]
        source = inputs.sources.get(crop.source_sha256, {})
        if crop_id == cluster.kept:
            label = "kept"
        else:
            label, reason, d, d2 = relation(prints[crop_id], kept, cfg, artwork.get((crop_id, cluster.kept)))
            dropped.append(
                {
                    "id": crop_id,
                    "reason": reason,
                    "kept_id": cluster.kept,
                    "cluster_id": cluster.cluster_id,
                    "distance": d,
                    "dhash_distance": d2,
                    "detail": label,
                }
            )
        members.append(
            report.MemberView(
                crop_id,
                crop.path,
                crop_id == cluster.kept,
                label,
                crop.face_area,
                prints[crop_id]["sharpness"],
                source,
            )
        )
    return report.ClusterView(cluster.cluster_id, cluster.why, members)


def not_clustered(inputs: Inputs, prints: Prints) -> list[dict[str, Any]]:
    """Dropped rows for crops that never reached clustering: unusable, demoted, or malformed rows."""
    dropped = []
    for crop in inputs.crops:
        if prints[crop.id]["error"]:
            code, _, detail = prints[crop.id]["error"].partition(": ")
            dropped.append({"id": crop.id, "reason": code, "detail": detail})
    for crop_id in sorted(inputs.demoted):
        dropped.append(
            {"id": crop_id, "reason": "demoted", "detail": "a person demoted this crop (facecrop overrides)"}
        )
    for what, why in inputs.malformed:
        dropped.append({"id": what, "reason": "bad_manifest_row", "detail": why})
    return dropped


def describe(
    clusters: list[Cluster], inputs: Inputs, prints: Prints, artwork: ArtworkLinks, cfg: DedupConfig
) -> Described:
    crops = {c.id: c for c in inputs.crops}
    rows = [face_row(cl, crops[cl.kept], prints[cl.kept], cfg) for cl in clusters]
    dropped: list[dict[str, Any]] = []
    views = [
        cluster_view(cl, inputs, prints, artwork, cfg, dropped) for cl in clusters if len(cl.members) > 1
    ]
    dropped += not_clustered(inputs, prints)
    return Described(rows, dropped, views)


def publish_faces(
    layout: Layout,
    described: Described,
    prints: Prints,
    cache: ThumbCache,
    cfg: DedupConfig,
    workers: int,
    republish: bool,
    progress: bool = True,
) -> tuple[int, int]:
    """faces64/*.png, faces64/manifest.jsonl and dropped.jsonl; returns (PNGs written, PNGs removed)."""
    if republish:
        faces.write_manifest(layout, [])  # every face's pixels may have changed: republish all
    kept = [(row.id, prints[row.id]["thumb_row"], prints[row.id]["thumb_sha256"]) for row in described.faces]
    added, removed = faces.publish(layout, sorted(kept), cache.path, cfg.output_size, workers, progress)
    faces.write_manifest(layout, [row.to_row() for row in described.faces])
    atomic.write_jsonl(layout.dropped_log, sorted(described.dropped, key=lambda r: (r["reason"], r["id"])))
    return added, removed


def shard_rows(
    cache: ThumbCache, kept: list[str], prints: Prints, progress: bool = True
) -> Iterator[np.ndarray]:
    """Each kept face's cached pixels, checked against the digest taken when it was hashed."""
    rows = cache.rows()
    for crop_id in tqdm(
        kept, desc="dedup: shard", unit="face", file=sys.stderr, dynamic_ncols=True, disable=not progress
    ):
        pixels = np.asarray(rows[prints[crop_id]["thumb_row"]])
        if pixel_digest(pixels) != prints[crop_id]["thumb_sha256"]:
            raise PipelineError(
                f"{cache.path} row {prints[crop_id]['thumb_row']} ({crop_id}) is damaged; "
                f"delete {cache.path.parent} and run again"
            )
        yield pixels


def publish_shard(
    layout: Layout,
    kept: list[str],
    inputs: Inputs,
    prints: Prints,
    cache: ThumbCache,
    cfg: DedupConfig,
    progress: bool = True,
) -> bool:
    """The training shard, rewritten only when something that goes into it changed; True if it was."""
    crops = {c.id: c for c in inputs.crops}
    labels = {"hair_color": [crops[i].hair_color for i in kept]}
    config_used = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k != "workers"
    }  # workers do not change content
    key = shard.content_key(kept, [prints[i]["thumb_sha256"] for i in kept], labels, config_used)
    if shard.is_current(layout.data, key):
        return False
    side = cfg.output_size
    shard.write_shard(
        layout.data,
        shard_rows(cache, kept, prints, progress),
        len(kept),
        (side, side, 3),
        ids=kept,
        labels=labels,
        config=config_used,
        content_key=key,
    )
    return True


# Counts that describe this run rather than the corpus: left out of the report, so a re-run
# with nothing new leaves it untouched.
PER_RUN = (
    "hashed this run",
    "re-hashed (settings changed)",
    "re-searched (settings changed)",
    "contents searched this run",
    "new near pairs",
    "faces64 added/removed",
    "shard",
    "dropped",
    "seconds",
)


def write_report(layout: Layout, described: Described, counts: dict[str, Any]) -> None:
    corpus = {k: v for k, v in counts.items() if k not in PER_RUN}
    corpus |= {f"dropped: {k}": v for k, v in described.dropped_by_reason().items()}
    report.write_report(layout, described.views, corpus)
