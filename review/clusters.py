"""The duplicate clusters page: the last dedup run's clusters, how each face is linked, what the next run keeps.

Everything here is what dedup published, read through its contract files: the faces64
manifest (each kept face, its cluster's other members, why it was kept, its perceptual
hashes) and `dedup/dropped.jsonl` (each dropped member's link to the kept face: exact
duplicate, near duplicate or same artwork stored twice, with the hash distances, worded as
dedup's static report words them). A person's split/keep decisions are applied with dedup's
own `apply_decisions`, so "kept" on the page is the face the next run keeps: after a split
both faces stay, the one split out on its own.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dedup.clusters import Cluster, apply_decisions
from pipeline import atomic, decisions
from pipeline.layout import Layout
from pipeline.phash import hex_to_words
from review.sources import Filter
from review.views import CropIndex, Page, file_stamp, no_gc_pauses, page_bounds

LINK_LABELS = {
    "exact_duplicate": "exact duplicate",
    "near_duplicate": "near duplicate",
    "same_artwork": "same artwork",
}


@dataclasses.dataclass
class ClusterRow:
    cluster_id: str
    kept: str
    members: list[str]
    why: str


@dataclasses.dataclass(frozen=True)
class Link:
    """A dropped member's link to the face its cluster kept, as dedup/dropped.jsonl records it."""

    kind: str  # exact_duplicate | near_duplicate | same_artwork
    kept_id: str
    distance: int | None  # Hamming distance of the main hashes (pHash by default)
    dhash_distance: int | None
    detail: str  # dedup's own words: "near duplicate (phash 3, dHash 5, colour 1.2)"

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "label": LINK_LABELS.get(self.kind, self.kind)}


@dataclasses.dataclass
class Hashes:
    """The perceptual hashes dedup stored for every face it kept (faces64 manifest `hashes`)."""

    kind: str = "phash"
    bits: int = 64
    ids: list[str] = dataclasses.field(default_factory=list)
    position: dict[str, int] = dataclasses.field(default_factory=dict)
    words: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 1), np.uint64))
    dhash: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.uint64))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


HashRow = tuple[str, Any, Any, Any, Any]  # (id, hash kind, hash bits, main hash hex, dHash hex)


def hash_row(row: dict[str, Any]) -> HashRow:
    hashes = row.get("hashes") if isinstance(row.get("hashes"), dict) else {}
    kind = row.get("hash_kind")
    return row["id"], kind, row.get("hash_bits"), hashes.get(kind), hashes.get("dhash")


def read_hashes(rows: list[HashRow]) -> Hashes:
    """The faces' hashes of the manifest's one hash kind; rows without a well-formed pair are left out."""
    kinds = [r[1] for r in rows if isinstance(r[1], str)]
    kind = max(set(kinds), key=kinds.count) if kinds else "phash"
    bits = next((_int(r[2]) for r in rows if r[1] == kind), None) or 64
    ids, mains, dhashes = [], [], []
    for crop_id, row_kind, _, main, dhash in rows:
        if row_kind != kind:
            continue
        try:
            words = hex_to_words(main, bits) if bits != 64 else int(main, 16)  # one word: a plain int
            dvalue = int(dhash, 16)
        except (TypeError, ValueError, OverflowError):
            continue
        if len(main) * 4 < bits or dvalue >= 2**64 or (bits == 64 and words >= 2**64):
            continue
        ids.append(crop_id)
        mains.append(words)
        dhashes.append(dvalue)
    words_per = -(-bits // 64)
    return Hashes(
        kind,
        bits,
        ids,
        {crop_id: k for k, crop_id in enumerate(ids)},
        np.array(mains, np.uint64).reshape(len(ids), words_per),
        np.array(dhashes, np.uint64),
    )


def read_links(path: Path) -> dict[str, Link]:
    """Each dropped duplicate's link (rows dropped for other reasons, such as a demotion, are no link)."""
    links: dict[str, Link] = {}
    for _, row in atomic.iter_jsonl(path):
        if not isinstance(row, dict) or row.get("reason") not in LINK_LABELS:
            continue
        if not isinstance(row.get("id"), str) or not isinstance(row.get("kept_id"), str):
            continue
        links[row["id"]] = Link(
            row["reason"],
            row["kept_id"],
            _int(row.get("distance")),
            _int(row.get("dhash_distance")),
            str(row.get("detail") or LINK_LABELS[row["reason"]]),
        )
    return links


def read_clusters(path: Path) -> tuple[list[ClusterRow], list[HashRow]]:
    """(the multi-member clusters, biggest first; every face's hashes)."""
    clusters, faces = [], []
    for _, row in atomic.iter_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        faces.append(hash_row(row))
        duplicates = row.get("duplicates")
        if not isinstance(duplicates, list) or not duplicates:
            continue
        members = [row["id"], *[d for d in duplicates if isinstance(d, str)]]
        clusters.append(
            ClusterRow(str(row.get("cluster_id", "")), row["id"], members, str(row.get("kept_because", "")))
        )
    clusters.sort(key=lambda c: (-len(c.members), c.kept))
    return clusters, faces


class ClusterIndex:
    """The last dedup run's multi-member clusters (faces64/manifest.jsonl), biggest first, with the
    dedup decisions log applied through dedup's own `apply_decisions`."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = Layout(data_dir)
        self.lock = threading.RLock()
        self.manifest_stat: Any = ("never",)
        self.generation = 0
        self.clusters: list[ClusterRow] = []
        self.member_of: dict[str, int] = {}
        self.links: dict[str, Link] = {}
        self.hashes = Hashes()
        self.kinds: list[set[str]] = []
        self.max_distance = np.zeros(0)
        self.decided: dict[str, decisions.Decision] = {}
        self.log_offset = 0
        self.members_at: tuple[int, int] = (-1, -1)  # (crops generation, ours) the arrays below are for
        self.member_pos = np.zeros(0, np.int64)  # every member's crop row (-1: not in the crops manifest)
        self.member_cluster = np.zeros(0, np.int64)

    def refresh(self) -> None:
        with self.lock:
            stat = (file_stamp(self.layout.faces_manifest), file_stamp(self.layout.dropped_log))
            if stat != self.manifest_stat:
                self.manifest_stat = stat
                with no_gc_pauses():
                    self._load()
            new, self.log_offset = decisions.read_new(
                self.layout.dedup_decisions_log, decisions.DEDUP_ACTIONS, self.log_offset
            )
            for crop_id, decision in new.items():
                if decision.action == decisions.CLEAR:
                    self.decided.pop(crop_id, None)
                else:
                    self.decided[crop_id] = decision

    def _load(self) -> None:
        self.clusters, faces = read_clusters(self.layout.faces_manifest)
        self.hashes = read_hashes(faces)
        self.links = read_links(self.layout.dropped_log)
        self.member_of = {m: k for k, c in enumerate(self.clusters) for m in c.members}
        self.kinds = [{self.links[m].kind for m in c.members if m in self.links} for c in self.clusters]
        self.max_distance = np.array(
            [
                max((d for m in c.members if (d := self._distance(m)) is not None), default=np.nan)
                for c in self.clusters
            ],
            np.float64,
        )
        self.generation += 1

    def _distance(self, crop_id: str) -> int | None:
        link = self.links.get(crop_id)
        return link.distance if link else None

    def now(self, k: int) -> list[Cluster]:
        """Cluster k as the next dedup run will make it (a split leaves members standing alone)."""
        c = self.clusters[k]
        decided = {m: self.decided[m].action for m in c.members if m in self.decided}
        return apply_decisions([Cluster(c.cluster_id, c.kept, list(c.members), c.why)], decided)

    def _positions(self, crops: CropIndex) -> None:
        key = (crops.generation, self.generation)
        if self.members_at == key:
            return
        pos, owner = [], []
        for k, c in enumerate(self.clusters):
            for m in c.members:
                found = crops.find(m)
                pos.append(-1 if found is None else found)
                owner.append(k)
        self.member_pos = np.array(pos, np.int64)
        self.member_cluster = np.array(owner, np.int64)
        self.members_at = key

    def matching(self, crops: CropIndex, filt: Filter, kind: str | None) -> np.ndarray:
        """Indices of the clusters with a member that passes the filter, of the link kind, in the range."""
        keep = np.ones(len(self.clusters), bool)
        narrow = crops.filter_mask(filt)
        if narrow is not None:
            self._positions(crops)
            known = self.member_pos >= 0
            hits = np.zeros(self.member_pos.size, bool)
            hits[known] = narrow[self.member_pos[known]]
            keep &= np.bincount(self.member_cluster[hits], minlength=len(self.clusters)) > 0
        if kind:
            keep &= np.array([kind in kinds for kinds in self.kinds], bool)
        in_range = filt.in_range(self.max_distance)
        if in_range is not None:
            keep &= in_range
        return np.flatnonzero(keep)

    def page(
        self, crops: CropIndex, offset: int, limit: int, filt: Filter | None = None, kind: str | None = None
    ) -> Page:
        with self.lock, crops.lock:  # always this order (clusters, then crops), as actions take them
            filt = filt or Filter()
            chosen = self.matching(crops, filt, kind) if filt != Filter() or kind else None
            total = len(self.clusters) if chosen is None else int(chosen.size)
            first, end = page_bounds(total, offset, limit)
            shown = range(first, end) if chosen is None else chosen[first:end]
            return Page(total, first, [self.view(int(k), crops) for k in shown])

    def view(self, k: int, crops: CropIndex) -> dict[str, Any]:
        """Cluster k for the page: each member's link, and what the next run keeps (never "none" while a face stays)."""
        c = self.clusters[k]
        after = self.now(k)
        split = {m for m in c.members if (d := self.decided.get(m)) and d.action == "split"}
        keepers = {x.kept for x in after}
        main = next((x for x in after if x.kept not in split), None)
        members = [self._member(crop_id, c, main, split, keepers, crops) for crop_id in c.members]
        return {
            "index": k,
            "cluster_id": c.cluster_id,
            "kept": c.kept,
            "kept_now": main.kept if main else None,
            "split_out": [m for m in c.members if m in split],
            "stays": [m for m in c.members if m in keepers],
            "why": main.why if main and main.kept != c.kept else c.why,
            "kinds": sorted(LINK_LABELS.get(kind, kind) for kind in self.kinds[k]),
            "members": members,
        }

    def _member(
        self,
        crop_id: str,
        c: ClusterRow,
        main: Cluster | None,
        split: set[str],
        keepers: set[str],
        crops: CropIndex,
    ) -> dict[str, Any]:
        position = crops.find(crop_id)
        card = crops.card(position) if position is not None else {"id": crop_id, "has_crop": False}
        decision = self.decided.get(crop_id)
        link = self.links.get(crop_id)
        card.update(
            was_kept=crop_id == c.kept,
            kept=main is not None and crop_id == main.kept,
            split=crop_id in split,
            stays=crop_id in keepers,
            dedup_decision=decision.action if decision else None,
            link=link.as_json() if link else None,
        )
        return card

    def cluster_of(self, crop_id: str) -> int | None:
        return self.member_of.get(crop_id)

    def kind_counts(self) -> dict[str, int]:
        """Clusters per link kind, for the clusters view's reason menu."""
        counts: dict[str, int] = {}
        for kinds in self.kinds:
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
        return {kind: counts[kind] for kind in LINK_LABELS if kind in counts}
