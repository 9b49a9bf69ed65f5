"""The stage top to bottom: inputs -> fingerprints -> near pairs -> clusters -> faces64, shard, report.

Every step is restartable: fingerprints and pairs live in SQLite (committed in batches),
files are written through temp + rename, and each step recomputes only what is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dedup import outputs
from dedup.artwork import artwork_links
from dedup.clusters import Cluster, Member, apply_decisions, build_clusters
from dedup.config import DedupConfig
from dedup.fingerprint import Fingerprint, Job, colour_distance, compute, pixel_digest
from dedup.inputs import Inputs, read_inputs
from dedup.search import near_pairs
from dedup.state import State
from dedup.thumbcache import ThumbCache
from dedup.workers import pool
from pipeline import atomic
from pipeline.decisions import read_dedup_decisions
from pipeline.layout import Layout
from pipeline.manifests import CropRow
from pipeline.phash import hex_to_words
from pipeline.pool import worker_count as pool_size

logger = logging.getLogger(__name__)

SAVE_EVERY = 1000  # commit at least this often (crops) ...
SAVE_SECONDS = 2.0  # ... or this often (seconds), so a kill loses little


@dataclasses.dataclass
class Outcome:
    counts: dict[str, Any]
    kept: list[str]
    clusters: list[Cluster]
    seconds: dict[str, float]  # wall time per step, for the summary and the benchmark


def low_information(record: dict, cfg: DedupConfig) -> bool:
    """Flat or two-tone images: their hashes collide with unrelated ones, so they only merge exactly."""
    bits = cfg.hash_size * cfg.hash_size
    ones = int(np.bitwise_count(hex_to_words(record["hash_hex"], bits)).sum())
    floor = cfg.min_bit_fraction * bits
    return record["gray_std"] < cfg.min_contrast or ones < floor or bits - ones < floor


def fingerprint_all(
    data_dir: Path,
    crops: list[CropRow],
    cfg: DedupConfig,
    state: State,
    cache: ThumbCache,
    progress: bool = True,
) -> int:
    """Hash the crops that have no fingerprint yet, committing as results arrive.

    Thumbnail rows are flushed to the cache before the batch that points at them is
    committed, so a kill at any instant loses at most the uncommitted batch.
    """
    jobs = [hash_job(data_dir, c, cfg) for c in crops]
    if not jobs:
        return 0
    executor = pool(min(worker_count(cfg), max(1, len(jobs) // 32)))
    bar = tqdm(
        total=len(jobs),
        desc="dedup: hashing",
        unit="crop",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not progress,
    )
    try:
        record_prints(
            executor.map(compute, jobs, chunksize=64), {c.id: c.path for c in crops}, state, cache, bar
        )
    finally:
        bar.close()
        cache.close()
        executor.shutdown(cancel_futures=True)
    return len(jobs)


def hash_job(data_dir: Path, crop: CropRow, cfg: DedupConfig) -> Job:
    return Job(
        crop.id,
        str(data_dir / crop.path),
        cfg.hash,
        cfg.hash_size,
        cfg.output_size,
        cfg.resize_filter,
        cfg.min_crop_side,
    )


def record_prints(
    results: Iterable[Fingerprint], paths: dict[str, str], state: State, cache: ThumbCache, bar: tqdm
) -> None:
    """Store each fingerprint (its thumbnail in the cache first), committing every SAVE_EVERY rows or
    SAVE_SECONDS, whichever comes first."""
    pending: list[tuple[str, Fingerprint, int | None]] = []
    next_row = state.next_thumb_row()
    last_save = time.monotonic()
    for fp in results:
        row = None
        if not fp.error:
            row, next_row = next_row, next_row + 1
            cache.write(row, fp.thumb)
        pending.append((paths[fp.crop_id], fp, row))
        bar.update(1)
        if len(pending) >= SAVE_EVERY or time.monotonic() - last_save > SAVE_SECONDS:
            cache.flush()
            state.save_prints(pending)
            pending.clear()
            last_save = time.monotonic()
    cache.flush()
    state.save_prints(pending)


def worker_count(cfg: DedupConfig) -> int:
    return pool_size(cfg.workers)


def search_new(prints: dict[str, dict], cfg: DedupConfig, state: State) -> tuple[int, int, int]:
    """Compare contents not searched before against every content; returns (searched, pairs, low_info)."""
    contents: dict[str, dict] = {}
    for crop_id in sorted(prints):
        record = prints[crop_id]
        if not record["error"]:
            contents.setdefault(record["pixel_sha256"], record)
    eligible = [sha for sha, rec in contents.items() if not low_information(rec, cfg)]
    low_info = len(contents) - len(eligible)
    done = state.searched()
    query = np.array([k for k, sha in enumerate(eligible) if sha not in done], dtype=np.int64)
    if query.size == 0:
        return 0, 0, low_info
    bits = cfg.hash_size * cfg.hash_size
    hashes = np.array([hex_to_words(contents[sha]["hash_hex"], bits) for sha in eligible], dtype=np.uint64)
    i, j, dist = near_pairs(hashes, cfg.threshold, bits, query)
    dhashes = np.array([hex_to_words(contents[sha]["dhash_hex"], 64)[0] for sha in eligible], dtype=np.uint64)
    ddist = np.bitwise_count(dhashes[i] ^ dhashes[j]).astype(np.int64)
    keep = ddist <= cfg.confirm_dhash if cfg.confirm_dhash >= 0 else np.ones(i.size, dtype=bool)
    if cfg.max_colour_distance >= 0 and i.size:
        colours = (
            np.frombuffer(bytes.fromhex("".join(contents[sha]["colour_hex"] for sha in eligible)), np.uint8)
            .reshape(len(eligible), -1)
            .astype(np.int16)
        )
        keep &= np.abs(colours[i] - colours[j]).mean(axis=1) <= cfg.max_colour_distance
    pairs = [
        (eligible[a], eligible[b], int(d), int(d2))
        for a, b, d, d2 in zip(i[keep], j[keep], dist[keep], ddist[keep], strict=True)
    ]
    state.save_search((eligible[k] for k in query), pairs)
    return int(query.size), len(pairs), low_info


def cluster_active(
    crops: list[CropRow],
    prints: dict[str, dict],
    pairs: list[tuple],
    cfg: DedupConfig,
    artwork: list[tuple[int, int]] = (),
) -> list[Cluster]:
    """`artwork` are extra (index, index) links into `crops`: the same face in two copies of one picture."""
    members = [Member(c.id, c.face_area, prints[c.id]["sharpness"]) for c in crops]
    by_content: dict[str, list[int]] = {}
    for index, c in enumerate(crops):
        by_content.setdefault(prints[c.id]["pixel_sha256"], []).append(index)
    links = [(group[0], other) for group in by_content.values() for other in group[1:]]
    links += [
        (by_content[a][0], by_content[b][0]) for a, b, _, _ in pairs if a in by_content and b in by_content
    ]
    links += list(artwork)
    return build_clusters(members, links, cfg.keep)


def same_artwork(
    crops: list[CropRow], prints: dict[str, dict], cfg: DedupConfig
) -> dict[tuple[str, str], tuple[int, float]]:
    """(id, id) -> (source dHash distance, box IoU) for crops of one artwork stored twice.

    The colour guard applies here too: a recoloured edition of a picture is kept as its own face.
    """
    found = {}
    for link in artwork_links(crops, cfg.same_artwork, cfg.same_artwork_min_iou):
        a, b = crops[link.a].id, crops[link.b].id
        if (
            cfg.max_colour_distance >= 0
            and colour_distance(prints[a]["colour_hex"], prints[b]["colour_hex"]) > cfg.max_colour_distance
        ):
            continue
        found[(a, b)] = found[(b, a)] = (link.source_distance, link.iou)
    return found


@dataclasses.dataclass
class Found:
    """What hashing and searching left in the state: every crop's fingerprint and the near pairs."""

    prints: dict[str, dict]
    pairs: list[tuple[str, str, int, int]]
    rehashed: bool  # a hashing setting changed, so every crop was hashed again
    researched: bool  # a matching setting changed, so every content was searched again
    hashed: int
    searched: int
    new_pairs: int
    low_info: int


class Laps:
    """Wall seconds per step, for the summary and the benchmark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self.clock, 3)
        self.clock = now


def check_cache(state: State, cache: ThumbCache, verify: bool) -> None:
    """thumbs.u8 only caches pixels: fingerprints whose row was lost (a truncated file) or no longer
    matches its digest are forgotten, so those crops are hashed again. Every row's digest is checked
    with `verify`, or when the file is not as the last run left it (its size or mtime moved)."""
    damaged = []
    if not verify and state.cache_stamp() not in (None, cache.stamp()):
        logger.warning("%s changed since the last run left it; checking every row", cache.path)
        verify = True
    if verify:
        rows = cache.rows()
        damaged = [
            rec["thumb_row"]
            for rec in state.prints().values()
            if rec["thumb_row"] is not None
            and rec["thumb_row"] < len(rows)
            and pixel_digest(np.asarray(rows[rec["thumb_row"]])) != rec["thumb_sha256"]
        ]
    lost = state.forget_thumbs(cache.row_count(), damaged)
    if lost:
        logger.warning(
            "%s was damaged (%d thumbnail row(s) lost or changed); it is only a cache, so those crops "
            "are hashed again",
            cache.path,
            lost,
        )


def check_faces(layout: Layout, verify: bool) -> None:
    """faces64 PNGs that changed since this stage wrote them (`pipeline.ledger`) are deleted, so
    publishing writes them again from the cache."""
    state = State(layout.dedup_state)
    try:
        found = {png.stem: png for png in layout.faces_dir.glob("*.png")}
        checked = state.faces.check(found, verify=verify)
        for crop_id in checked.damaged:
            found[crop_id].unlink(missing_ok=True)
        state.faces.forget(checked.damaged)
    finally:
        state.close()
    if checked.damaged:
        logger.warning(
            "%d faces64 PNG(s) changed since they were written, e.g. %s; writing them again",
            len(checked.damaged),
            found[checked.damaged[0]],
        )


def record_faces(layout: Layout, kept: list[str]) -> None:
    """Remember the faces64 PNGs as this run left them, for the next run's `check_faces`."""
    state = State(layout.dedup_state)
    try:
        state.faces.refresh({crop_id: layout.face(crop_id) for crop_id in kept})
    finally:
        state.close()


def find_pairs(
    layout: Layout,
    inputs: Inputs,
    cfg: DedupConfig,
    cache: ThumbCache,
    laps: Laps,
    progress: bool,
    verify: bool = False,
) -> Found:
    """Fingerprint the crops not hashed yet (or moved, or missing last time), then search what is new."""
    state = State(layout.dedup_state)
    try:
        rehash, research = state.reconcile(cfg.hashing_key(), cfg.matching_key())
        if rehash or state.next_thumb_row() == 0:
            cache.reset()
        check_cache(state, cache, verify)
        prints = state.prints()
        retry = [
            c.id
            for c in inputs.crops
            if c.id in prints
            and (prints[c.id]["path"] != c.path or (prints[c.id]["error"] or "").startswith("missing"))
        ]
        state.forget(retry)
        for crop_id in retry:
            prints.pop(crop_id)
        todo = [c for c in inputs.crops if c.id not in prints]
        hashed = fingerprint_all(layout.data, todo, cfg, state, cache, progress)
        state.set_cache_stamp(cache.stamp())
        prints = state.prints()
        laps.lap("hash")
        searched, new_pairs, low_info = search_new(prints, cfg, state)
        pairs = state.pairs()
        laps.lap("search")
    finally:
        state.close()
    return Found(prints, pairs, rehash, research, hashed, searched, new_pairs, low_info)


def group(
    inputs: Inputs, found: Found, cfg: DedupConfig, decided: dict[str, str] | None = None
) -> tuple[list[Cluster], dict]:
    """Duplicate clusters of the usable crops, and the same-artwork links that joined some of them.

    `decided` (crop id -> split | keep, from dedup/decisions.jsonl) is a person's word and wins over the hashes.
    """
    usable = [c for c in inputs.crops if not found.prints[c.id]["error"]]
    artwork = same_artwork(usable, found.prints, cfg)
    index_of = {c.id: k for k, c in enumerate(usable)}
    links = [(index_of[a], index_of[b]) for a, b in artwork if a < b]
    return apply_decisions(
        cluster_active(usable, found.prints, found.pairs, cfg, links), decided or {}
    ), artwork


def summary_counts(
    inputs: Inputs,
    found: Found,
    described: outputs.Described,
    artwork: dict,
    faces_changed: tuple[int, int],
    rebuilt: bool,
) -> dict[str, Any]:
    added, removed = faces_changed
    return {
        "accepted crops": len(inputs.crops),
        "hashed this run": found.hashed,
        "re-hashed (settings changed)": "yes" if found.rehashed else "no",
        "re-searched (settings changed)": "yes" if found.researched else "no",
        "contents searched this run": found.searched,
        "new near pairs": found.new_pairs,
        "low-information contents": found.low_info,
        "same-artwork links": len(artwork) // 2,
        "duplicate clusters": len(described.views),
        "kept faces": len(described.faces),
        "faces64 added/removed": f"{added}/{removed}",
        "shard": "rebuilt" if rebuilt else "unchanged",
        "dropped": described.dropped_by_reason() or {"none": 0},
    }


def run(data_dir: Path, cfg: DedupConfig, progress: bool = True, verify: bool = False) -> Outcome:
    """inputs -> fingerprints and pairs -> clusters -> faces64 + dropped -> shard -> report.

    `verify`: check every cached thumbnail and every faces64 PNG by hash (a plain run checks sizes
    and mtimes, and hashes only the files whose mtime moved).
    """
    layout, laps = Layout(Path(data_dir)), Laps()
    inputs = read_inputs(layout.data)
    for folder in layout.dedup_outputs:
        atomic.remove_stale_temps(folder)
    cache = ThumbCache(layout.thumb_cache, cfg.output_size)
    found = find_pairs(layout, inputs, cfg, cache, laps, progress, verify)
    decided = {crop_id: d.action for crop_id, d in read_dedup_decisions(layout.data).items()}
    clusters, artwork = group(inputs, found, cfg, decided)
    kept = sorted(c.kept for c in clusters)
    laps.lap("cluster")
    described = outputs.describe(clusters, inputs, found.prints, artwork, cfg)
    check_faces(layout, verify)
    faces_changed = outputs.publish_faces(
        layout,
        described,
        found.prints,
        cache,
        cfg,
        worker_count(cfg),
        republish=found.rehashed,
        progress=progress,
    )
    record_faces(layout, kept)
    laps.lap("faces64")
    rebuilt = outputs.publish_shard(layout, kept, inputs, found.prints, cache, cfg, progress)
    laps.lap("shard")
    counts = summary_counts(inputs, found, described, artwork, faces_changed, rebuilt)
    counts["split/keep decisions (review)"] = len(decided)
    outputs.write_report(layout, described, counts)
    laps.lap("report")
    counts["seconds"] = laps.seconds
    return Outcome(counts, kept, clusters, laps.seconds)
