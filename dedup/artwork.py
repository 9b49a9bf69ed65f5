"""Crops of one artwork stored twice, linked through their source images.

A getchu image re-posted on a booru at another size or JPEG quality has different bytes,
so the crawler stores both. The cascade then places its box a few pixels differently on
each copy, and a few pixels of framing move a crop's pHash by 10-15 bits: too far for
the crop-level threshold, which must stay tight to keep different characters apart.
The whole images, however, stay within a few bits of each other. So two crops are the
same face when their sources are near-identical (256-bit dHash, recorded by facecrop)
and their boxes cover the same region of the picture (IoU of the boxes in coordinates
relative to each source's size).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from dedup.search import near_pairs
from pipeline.manifests import CropRow
from pipeline.phash import hex_to_words

SOURCE_HASH_BITS = 256


@dataclasses.dataclass(frozen=True)
class ArtworkLink:
    a: int  # index into the crops list
    b: int
    source_distance: int
    iou: float


def relative_box(crop: CropRow) -> tuple[float, float, float, float] | None:
    box, size = crop.row.get("box"), crop.row.get("source_size")
    if not (isinstance(box, list) and len(box) == 4 and isinstance(size, list) and len(size) == 2):
        return None
    width, height = size
    if not width or not height:
        return None
    x, y, w, h = box
    return x / width, y / height, w / width, h / height


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _source_hash(crop: CropRow) -> str | None:
    value = crop.row.get("source_dhash")
    if isinstance(value, str) and len(value) == SOURCE_HASH_BITS // 4:
        try:
            int(value, 16)
        except ValueError:
            return None
        return value
    return None


def artwork_links(crops: list[CropRow], threshold: int, min_iou: float) -> list[ArtworkLink]:
    """Pairs of crops from different, near-identical sources whose boxes overlap enough."""
    if threshold < 0:
        return []
    by_source: dict[str, list[int]] = defaultdict(list)
    hash_of: dict[str, str] = {}
    for index, crop in enumerate(crops):
        value = _source_hash(crop)
        if value is not None and crop.source_sha256:
            by_source[crop.source_sha256].append(index)
            hash_of[crop.source_sha256] = value
    sources = sorted(by_source)
    if len(sources) < 2:
        return []
    hashes = np.array([hex_to_words(hash_of[s], SOURCE_HASH_BITS) for s in sources], dtype=np.uint64)
    i, j, dist = near_pairs(hashes, threshold, SOURCE_HASH_BITS)
    links = []
    for si, sj, d in zip(i.tolist(), j.tolist(), dist.tolist(), strict=True):
        for a in by_source[sources[si]]:
            box_a = relative_box(crops[a])
            if box_a is None:
                continue
            for b in by_source[sources[sj]]:
                box_b = relative_box(crops[b])
                if box_b is None:
                    continue
                overlap = iou(box_a, box_b)
                if overlap >= min_iou:
                    links.append(ArtworkLink(a, b, int(d), round(overlap, 3)))
    return links
