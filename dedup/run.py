"""The stage top to bottom: inputs -> fingerprints -> near pairs -> clusters -> faces64, shard, report.

Every step is restartable: fingerprints and pairs live in SQLite (committed in batches),
files are written through temp + rename, and each step recomputes only what is missing.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dedup import faces, report, shard
from dedup.artwork import artwork_links
from dedup.clusters import Cluster, Member, build_clusters
from dedup.config import DedupConfig
from dedup.fingerprint import Fingerprint, Job, colour_distance, compute, pixel_digest
from dedup.hashing import hex_to_words
from dedup.inputs import Crop, Inputs, read_inputs
from dedup.search import near_pairs
from dedup.state import State
from dedup.thumbcache import ThumbCache
from dedup.workers import pool
from pipeline import atomic

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


def fingerprint_all(data_dir: Path, crops: list[Crop], cfg: DedupConfig, state: State, cache: ThumbCache) -> int:
    """Hash the crops that have no fingerprint yet, committing as results arrive.

    Thumbnail rows are flushed to the cache before the batch that points at them is
    committed, so a kill at any instant loses at most the uncommitted batch.
    """
    jobs = [Job(c.id, str(data_dir / c.path), cfg.hash, cfg.hash_size, cfg.output_size, cfg.resize_filter,
                cfg.min_crop_side) for c in crops]
    if not jobs:
        return 0
    workers = min(worker_count(cfg), max(1, len(jobs) // 32))
    pending: list[tuple[str, Fingerprint, int | None]] = []
    paths = {c.id: c.path for c in crops}
    next_row = state.next_thumb_row()
    bar = tqdm(total=len(jobs), desc="dedup: hashing", unit="crop", file=sys.stderr, dynamic_ncols=True)
    executor = pool(workers)

    last_save = time.monotonic()

    def save() -> None:
        nonlocal last_save
        cache.flush()
        state.save_prints(pending)
        pending.clear()
        last_save = time.monotonic()

    try:
        results = executor.map(compute, jobs, chunksize=64)
        for fp in results:
            row = None
            if not fp.error:
                row, next_row = next_row, next_row + 1
                cache.write(row, fp.thumb)
            pending.append((paths[fp.crop_id], fp, row))
            bar.update(1)
            if len(pending) >= SAVE_EVERY or time.monotonic() - last_save > SAVE_SECONDS:
                save()
        save()
    finally:
        bar.close()
        cache.close()
        executor.shutdown(cancel_futures=True)
    return len(jobs)


def worker_count(cfg: DedupConfig) -> int:
    return cfg.workers or os.cpu_count() or 1


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
        colours = np.frombuffer(bytes.fromhex("".join(contents[sha]["colour_hex"] for sha in eligible)),
                                np.uint8).reshape(len(eligible), -1).astype(np.int16)
        keep &= np.abs(colours[i] - colours[j]).mean(axis=1) <= cfg.max_colour_distance
    pairs = [(eligible[a], eligible[b], int(d), int(d2))
             for a, b, d, d2 in zip(i[keep], j[keep], dist[keep], ddist[keep], strict=True)]
    state.save_search((eligible[k] for k in query), pairs)
    return int(query.size), len(pairs), low_info


def cluster_active(crops: list[Crop], prints: dict[str, dict], pairs: list[tuple], cfg: DedupConfig,
                   artwork: list[tuple[int, int]] = ()) -> list[Cluster]:
    """`artwork` are extra (index, index) links into `crops`: the same face in two copies of one picture."""
    members = [Member(c.id, c.face_area, prints[c.id]["sharpness"]) for c in crops]
    by_content: dict[str, list[int]] = {}
    for index, c in enumerate(crops):
        by_content.setdefault(prints[c.id]["pixel_sha256"], []).append(index)
    links = [(group[0], other) for group in by_content.values() for other in group[1:]]
    links += [(by_content[a][0], by_content[b][0]) for a, b, _, _ in pairs if a in by_content and b in by_content]
    links += list(artwork)
    return build_clusters(members, links, cfg.keep)


def same_artwork(crops: list[Crop], prints: dict[str, dict], cfg: DedupConfig) -> dict[tuple[str, str], tuple[int, float]]:
    """(id, id) -> (source dHash distance, box IoU) for crops of one artwork stored twice.

    The colour guard applies here too: a recoloured edition of a picture is kept as its own face.
    """
    found = {}
    for link in artwork_links(crops, cfg.same_artwork, cfg.same_artwork_min_iou):
        a, b = crops[link.a].id, crops[link.b].id
        if cfg.max_colour_distance >= 0 and colour_distance(
                prints[a]["colour_hex"], prints[b]["colour_hex"]) > cfg.max_colour_distance:
            continue
        found[(a, b)] = found[(b, a)] = (link.source_distance, link.iou)
    return found


def relation(member: dict, kept: dict, cfg: DedupConfig, artwork: tuple[int, float] | None = None
             ) -> tuple[str, str, int | None, int | None]:
    """(label for the report, reason code, hash distance, dHash distance) of a member to its keeper."""
    if member["pixel_sha256"] == kept["pixel_sha256"]:
        return "exact duplicate", "exact_duplicate", 0, 0
    bits = cfg.hash_size * cfg.hash_size
    d = int(np.bitwise_count(hex_to_words(member["hash_hex"], bits) ^ hex_to_words(kept["hash_hex"], bits)).sum())
    d2 = int(np.bitwise_count(hex_to_words(member["dhash_hex"], 64) ^ hex_to_words(kept["dhash_hex"], 64)).sum())
    colour = colour_distance(member["colour_hex"], kept["colour_hex"])
    if artwork is not None and d > cfg.threshold:
        source_distance, overlap = artwork
        return (f"same artwork stored twice (source dHash-256 {source_distance}, box IoU {overlap:.2f}; "
                f"{cfg.hash} {d}, colour {colour:.1f})", "same_artwork", d, d2)
    return f"near duplicate ({cfg.hash} {d}, dHash {d2}, colour {colour:.1f})", "near_duplicate", d, d2


def shard_rows(cache: ThumbCache, kept: list[str], prints: dict[str, dict]):
    """Each kept face's cached pixels, checked against the digest taken when it was hashed."""
    rows = cache.rows()
    for crop_id in tqdm(kept, desc="dedup: shard", unit="face", file=sys.stderr, dynamic_ncols=True):
        pixels = np.asarray(rows[prints[crop_id]["thumb_row"]])
        if pixel_digest(pixels) != prints[crop_id]["thumb_sha256"]:
            raise RuntimeError(f"{cache.path} row {prints[crop_id]['thumb_row']} ({crop_id}) is damaged; "
                               f"delete {cache.path.parent} and run again")
        yield pixels


def run(data_dir: Path, cfg: DedupConfig) -> Outcome:
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 3)
        clock = now

    inputs: Inputs = read_inputs(data_dir)
    for folder in ("dedup", "faces64", "shards"):
        atomic.remove_stale_temps(data_dir / folder)
    state = State(data_dir / "dedup" / "state.sqlite")
    cache = ThumbCache(data_dir / "dedup" / "thumbs.u8", cfg.output_size)
    try:
        rehash, research = state.reconcile(cfg.hashing_key(), cfg.matching_key())
        if rehash or state.next_thumb_row() == 0:
            cache.reset()
        prints = state.prints()
        retry = [c.id for c in inputs.crops if c.id in prints and (
            prints[c.id]["path"] != c.path or (prints[c.id]["error"] or "").startswith("missing"))]
        state.forget(retry)
        for crop_id in retry:
            prints.pop(crop_id)
        hashed = fingerprint_all(data_dir, [c for c in inputs.crops if c.id not in prints], cfg, state, cache)
        prints = state.prints()
        lap("hash")
        searched, new_pairs, low_info = search_new(prints, cfg, state)
        pairs = state.pairs()
        lap("search")
    finally:
        state.close()

    usable = [c for c in inputs.crops if not prints[c.id]["error"]]
    failed = [c for c in inputs.crops if prints[c.id]["error"]]
    artwork = same_artwork(usable, prints, cfg)
    index_of = {c.id: k for k, c in enumerate(usable)}
    clusters = cluster_active(usable, prints, pairs, cfg, [(index_of[a], index_of[b]) for a, b in artwork if a < b])
    crops_by_id = {c.id: c for c in inputs.crops}
    kept = sorted(c.kept for c in clusters)
    lap("cluster")

    if rehash:
        faces.write_manifest(data_dir, [])  # every face's pixels may have changed: republish all
    added, removed = faces.publish(data_dir, [(i, prints[i]["thumb_row"], prints[i]["thumb_sha256"]) for i in kept],
                                   cache.path, cfg.output_size, worker_count(cfg))
    manifest, dropped, views = [], [], []
    for cl in clusters:
        keeper = crops_by_id[cl.kept]
        rec = prints[cl.kept]
        manifest.append({
            "id": cl.kept, "crop_id": cl.kept, "path": f"faces64/{cl.kept}.png",
            "source_sha256": keeper.source_sha256, "source_path": keeper.source_path,
            "cluster_id": cl.cluster_id, "cluster_size": len(cl.members), "duplicates": cl.members[1:],
            "kept_because": cl.why,
            "hashes": {cfg.hash: rec["hash_hex"], "dhash": rec["dhash_hex"], "pixel_sha256": rec["pixel_sha256"],
                       "thumb_sha256": rec["thumb_sha256"]},
            "hash_kind": cfg.hash, "hash_bits": cfg.hash_size * cfg.hash_size,
            "face_area": keeper.face_area, "crop_side": rec["width"], "sharpness": round(rec["sharpness"], 3),
            "hair_color": keeper.hair_color, "eye_colors": keeper.eye_colors,
        })
        if len(cl.members) == 1:
            continue
        member_views = []
        for crop_id in cl.members:
            c = crops_by_id[crop_id]
            source = inputs.sources.get(c.source_sha256, {})
            if crop_id == cl.kept:
                member_views.append(report.MemberView(crop_id, c.path, True, "kept", c.face_area, prints[crop_id]["sharpness"], source))
                continue
            label, reason, d, d2 = relation(prints[crop_id], rec, cfg, artwork.get((crop_id, cl.kept)))
            dropped.append({"id": crop_id, "reason": reason, "kept_id": cl.kept, "cluster_id": cl.cluster_id,
                            "distance": d, "dhash_distance": d2, "detail": label})
            member_views.append(report.MemberView(crop_id, c.path, False, label, c.face_area, prints[crop_id]["sharpness"], source))
        views.append(report.ClusterView(cl.cluster_id, cl.why, member_views))
    for c in failed:
        code, _, detail = prints[c.id]["error"].partition(": ")
        dropped.append({"id": c.id, "reason": code, "detail": detail})
    in_manifest = {c.id for c in inputs.crops} | inputs.demoted
    for crop_id in sorted(inputs.demoted & in_manifest):
        dropped.append({"id": crop_id, "reason": "demoted", "detail": "a person demoted this crop (facecrop overrides)"})
    for what, why in inputs.malformed:
        dropped.append({"id": what, "reason": "bad_manifest_row", "detail": why})
    faces.write_manifest(data_dir, manifest)
    atomic.write_jsonl(data_dir / "dedup" / "dropped.jsonl", sorted(dropped, key=lambda r: (r["reason"], r["id"])))

    lap("faces64")
    hair = [crops_by_id[i].hair_color for i in kept]
    labels = {"hair_color": hair}
    config_used = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "workers"}  # workers do not change content
    key = shard.content_key(kept, [prints[i]["thumb_sha256"] for i in kept], labels, config_used)
    rebuilt = False
    if not shard.is_current(data_dir, key):
        meta = {"ids": kept, "labels": labels, "label_vocab": {"hair_color": sorted({h for h in hair if h})},
                "config": config_used, "content_key": key}
        shard.write_shard(data_dir, shard_rows(cache, kept, prints), len(kept), cfg.output_size, meta)
        rebuilt = True

    lap("shard")
    reasons: dict[str, int] = {}
    for row in dropped:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    counts: dict[str, Any] = {
        "accepted crops": len(inputs.crops), "hashed this run": hashed,
        "re-hashed (settings changed)": "yes" if rehash else "no",
        "re-searched (settings changed)": "yes" if research else "no",
        "contents searched this run": searched, "new near pairs": new_pairs, "low-information contents": low_info,
        "same-artwork links": len(artwork) // 2,
        "duplicate clusters": len(views), "kept faces": len(kept),
        "faces64 added/removed": f"{added}/{removed}", "shard": "rebuilt" if rebuilt else "unchanged",
        "dropped": reasons or {"none": 0},
    }
    # The report describes the corpus, not this run, so a re-run with nothing new leaves it untouched.
    per_run = ("hashed this run", "re-hashed (settings changed)", "re-searched (settings changed)",
               "contents searched this run", "new near pairs", "faces64 added/removed", "shard", "dropped", "seconds")
    report.write_report(data_dir / "dedup" / "report.html", views, {k: v for k, v in counts.items() if k not in per_run}
                        | {f"dropped: {k}": v for k, v in reasons.items()})
    lap("report")
    counts["seconds"] = seconds
    return Outcome(counts, kept, clusters, seconds)
