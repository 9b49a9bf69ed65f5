"""Similar faces: the nearest faces to a crop by the perceptual hashes dedup stored.

dedup stores the hashes of every face it kept in faces64/manifest.jsonl (pHash by default,
and a 64-bit dHash), and each dropped duplicate's distance to its kept face in
dedup/dropped.jsonl. A crop with no stored hash (a dropped duplicate, a reject) is hashed
here once with dedup's own fingerprint function and the settings the shard records, so
its distances mean what dedup's do. The answer lists the crop's own duplicate cluster first
(dedup already judged those the same face), then the nearest other faces of the dataset.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dedup.config import DedupConfig
from dedup.fingerprint import Job, compute
from pipeline import shard
from pipeline.layout import Layout
from pipeline.phash import hex_to_words
from review.clusters import ClusterIndex, Hashes
from review.views import CropIndex, file_stamp

DEFAULT_LIMIT = 24
MAX_LIMIT = 200
CACHE = 512  # hashes computed here, by crop file, mtime and size


class Hasher:
    """dedup's fingerprint of a crop without a stored hash, with the settings the last dedup run used."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = Layout(data_dir)
        self.lock = threading.Lock()
        self.cache: collections.OrderedDict[tuple[str, int, int, str, int], tuple[np.ndarray, int]] = (
            collections.OrderedDict()
        )
        self.recorded: tuple[Any, tuple[int, str]] = (("never",), (0, ""))

    def settings(self) -> tuple[int, str]:
        """(output size, resize filter) from the shard's recorded config (read again only when it changes),
        else dedup's defaults."""
        stat = file_stamp(self.layout.shard_json)
        if self.recorded[0] == stat:
            return self.recorded[1]
        default = DedupConfig()
        try:
            config = shard.read_sidecar(self.layout.shard_json).get("config") or {}
        except (shard.ShardError, OSError):
            config = {}
        size = config.get("output_size")
        resize = config.get("resize_filter")
        value = (
            size if isinstance(size, int) else default.output_size,
            resize if resize in ("area", "lanczos") else default.resize_filter,
        )
        self.recorded = (stat, value)
        return value

    def hash(self, crop_id: str, path: Path, hashes: Hashes) -> tuple[np.ndarray, int] | None:
        """(main hash words, dHash) of the crop file, or None when it cannot be read."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size, hashes.kind, hashes.bits)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        with self.lock:
            size, resize = self.settings()
        side = int(round(hashes.bits**0.5))
        fp = compute(Job(crop_id, str(path), hashes.kind, side, size, resize, 0))
        if fp.error or not fp.hash_hex:
            return None
        value = (hex_to_words(fp.hash_hex, hashes.bits), int(fp.dhash_hex, 16))
        with self.lock:
            self.cache[key] = value
            while len(self.cache) > CACHE:
                self.cache.popitem(last=False)
        return value


def distances(hashes: Hashes, words: np.ndarray, dhash: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances of one hash to every stored face: (main hash, dHash)."""
    main = np.bitwise_count(hashes.words ^ words.reshape(1, -1)).sum(axis=1).astype(np.int64)
    second = np.bitwise_count(hashes.dhash ^ np.uint64(dhash)).astype(np.int64)
    return main, second


def own_hash(
    crop_id: str, crops: CropIndex, clusters: ClusterIndex, hasher: Hasher
) -> tuple[np.ndarray, int] | None:
    hashes = clusters.hashes
    k = hashes.position.get(crop_id)
    if k is not None:
        return hashes.words[k], int(hashes.dhash[k])
    path = crops.crop_file(crop_id)
    return hasher.hash(crop_id, path, hashes) if path else None


def similar(
    crop_id: str, crops: CropIndex, clusters: ClusterIndex, hasher: Hasher, limit: int = DEFAULT_LIMIT
) -> dict[str, Any] | None:
    """The crop and its nearest faces with their distances; None when there is no such crop."""
    with clusters.lock, crops.lock:
        k = crops.find(crop_id)
        if k is None:
            return None
        query = crops.card(k)
        hashes = clusters.hashes
        if not hashes.ids:
            return {
                "query": query,
                "items": [],
                "hash": hashes.kind,
                "note": "no stored hashes: run dedup first",
            }
        mine = own_hash(crop_id, crops, clusters, hasher)
        if mine is None:
            return {
                "query": query,
                "items": [],
                "hash": hashes.kind,
                "note": "the crop's image cannot be read",
            }
        found = _mates(crop_id, mine, crops, clusters, hasher)
        main, second = distances(hashes, *mine)
        limit = max(1, min(limit, MAX_LIMIT))
        order = np.lexsort((second, main))
        for j in order[: limit + len(found) + 1]:
            other = hashes.ids[int(j)]
            if other != crop_id and other not in found and len(found) < limit:
                found[other] = (int(main[j]), int(second[j]), False)
        items = [_item(crops, clusters, other, *value) for other, value in found.items()]
        return {"query": query, "items": [i for i in items if i], "hash": hashes.kind, "note": None}


def _mates(
    crop_id: str, mine: tuple[np.ndarray, int], crops: CropIndex, clusters: ClusterIndex, hasher: Hasher
) -> dict[str, tuple[int, int, bool]]:
    """The other members of the crop's duplicate cluster, nearest first, with their distances to it."""
    k = clusters.cluster_of(crop_id)
    if k is None:
        return {}
    cluster = clusters.clusters[k]
    out = []
    for other in cluster.members:
        if other == crop_id:
            continue
        link = clusters.links.get(other)
        if crop_id == cluster.kept and link and link.distance is not None:
            out.append((link.distance, link.dhash_distance or 0, other))  # dedup's own measurement
            continue
        theirs = own_hash(other, crops, clusters, hasher)
        if theirs is not None:
            main = int(np.bitwise_count(theirs[0] ^ mine[0]).sum())
            out.append((main, int(np.bitwise_count(np.uint64(theirs[1] ^ mine[1]))), other))
    return {other: (d, d2, True) for d, d2, other in sorted(out)}


def _item(
    crops: CropIndex, clusters: ClusterIndex, crop_id: str, distance: int, dhash: int, same: bool
) -> dict[str, Any] | None:
    k = crops.find(crop_id)
    if k is None:
        return None
    card = crops.card(k)
    link = clusters.links.get(crop_id)
    card.update(
        distance=distance,
        dhash_distance=dhash,
        same_cluster=same,
        link=link.as_json() if link else None,
        in_dataset=crop_id in clusters.hashes.position,
    )
    return card
