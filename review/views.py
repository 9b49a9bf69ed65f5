"""What the pages show: the crops and clusters as the stages left them, with a person's newer decisions on top.

Built to stay fast at 100,000 crops: the crops manifest is scanned once (and again only
when facecrop rewrites it) into numpy columns (state, each measured value) plus each row's
byte offset; a page request filters and sorts those columns and parses only the rows it
shows, straight from the file. The decision logs only grow, so each line of them is read
once (`pipeline.decisions.read_new`) and a decision updates the columns of its ids only.

Current state = the manifest's automatic decision + the overrides log, through facecrop's
own `overrides.apply`, and the last dedup run's clusters + the dedup decisions log, through
dedup's own `apply_decisions`: the page shows what the next `make dataset` will produce.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dedup.clusters import Cluster, apply_decisions
from facecrop import overrides, rules
from facecrop.config import Thresholds
from pipeline import decisions
from pipeline.layout import Layout, rel_crop, rel_reject
from pipeline.manifests import safe_relative

# sort key -> (manifest `values` key, label). "Worst first" is ascending for every one of them.
SORT_KEYS: dict[str, tuple[str, str]] = {
    "likelihood": ("likelihood", "likelihood (animeface)"),
    "sharpness": ("sharpness", "blur (Laplacian variance)"),
    "saturation": ("saturation", "colour (mean saturation)"),
    "colors": ("unique_colors", "colour (distinct colours)"),
    "size": ("face_side", "size (face side, px)"),
    "confidence": ("confidence", "cascade confidence"),
}
VALUE = "value"  # the rejects view's default: the value that decided the reject
ACCEPTED = "accepted"
MAX_LIMIT = 500
CARD_FIELDS = ("id", "source_sha256", "source_size", "box", "crop_box", "size", "site", "url", "page_url")


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


class Stale(Exception):
    """The manifest was rewritten under a request (a facecrop run finished): refresh and ask again."""


@dataclasses.dataclass
class Page:
    total: int
    offset: int
    items: list[dict[str, Any]]


class CropIndex:
    """Columns over crops/manifest.jsonl; `refresh()` before reading picks up a rewrite or new log rows."""

    def __init__(self, data_dir: Path, thresholds: Thresholds) -> None:
        self.layout = Layout(data_dir)
        self.thresholds = thresholds
        self.lock = threading.RLock()
        self.manifest_stat: tuple[int, int, int] | None = ("never",)  # type: ignore[assignment]
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.offsets = np.zeros(0, np.int64)
        self.has_crop = np.zeros(0, bool)
        self.auto_state = np.zeros(0, np.int32)
        self.state = np.zeros(0, np.int32)
        self.columns: dict[str, np.ndarray] = {}
        self.reasons: list[str] = [ACCEPTED]  # state code -> "accepted" or a reject reason
        self.auto: list[tuple[str, str | None]] = []  # (auto_decision, auto_reason) per row
        self.overrides: dict[str, decisions.Decision] = {}  # the standing ones
        self.log_offset = 0
        self.orders: dict[tuple[str, bool], np.ndarray] = {}

    # ------------------------------------------------------------------ loading
    def code(self, decision: str | None, reason: str | None) -> int:
        name = ACCEPTED if decision == ACCEPTED else str(reason)
        if name not in self.reasons:
            self.reasons.append(name)
        return self.reasons.index(name)

    def refresh(self) -> None:
        with self.lock:
            stat = _stat(self.layout.crops_manifest)
            if stat != self.manifest_stat:
                self._load_manifest()
                self.manifest_stat = stat
                self.overrides, self.log_offset = {}, 0
            self._read_log()

    def _load_manifest(self) -> None:
        ids, offsets, has_crop, auto, auto_state = [], [], [], [], []
        values: dict[str, list[float]] = {key: [] for key in [*SORT_KEYS, VALUE]}
        path = self.layout.crops_manifest
        offset = 0
        if path.exists():
            with path.open("rb") as fh:
                for line in fh:
                    start, offset = offset, offset + len(line)
                    try:
                        row = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                        continue
                    vals = row.get("values") if isinstance(row.get("values"), dict) else {}
                    decision, reason = (
                        row.get("auto_decision", row.get("decision")),
                        row.get("auto_reason", row.get("reason")),
                    )
                    ids.append(row["id"])
                    offsets.append(start)
                    has_crop.append(row.get("crop_box") is not None)
                    auto.append((decision, reason))
                    auto_state.append(self.code(decision, reason))
                    for key, (name, _) in SORT_KEYS.items():
                        values[key].append(_number(vals.get(name, row.get(name))))
                    decided = (
                        rules.deciding_value(str(reason), vals, self.thresholds)[1]
                        if decision != ACCEPTED
                        else None
                    )
                    values[VALUE].append(_number(decided))
        self.ids = ids
        self.position = {crop_id: k for k, crop_id in enumerate(ids)}
        self.offsets = np.array(offsets, np.int64)
        self.has_crop = np.array(has_crop, bool)
        self.auto = auto
        self.auto_state = np.array(auto_state, np.int32)
        self.state = self.auto_state.copy()
        self.columns = {key: np.array(column, np.float64) for key, column in values.items()}
        self.orders = {}
        for sort in (VALUE, "likelihood"):  # the two views' default orders, so a first page only slices
            self.order(sort, False)

    def _read_log(self) -> None:
        new, self.log_offset = decisions.read_new(
            self.layout.overrides_log, decisions.OVERRIDE_ACTIONS, self.log_offset
        )
        if self.log_offset == 0 and not new:
            return
        for crop_id, decision in new.items():
            if decision.action == decisions.CLEAR:
                self.overrides.pop(crop_id, None)
            else:
                self.overrides[crop_id] = decision
            self._restate(crop_id)

    def _restate(self, crop_id: str) -> None:
        k = self.position.get(crop_id)
        if k is None:
            return
        decision, reason = self.current(k)
        self.state[k] = self.code(decision, reason)

    def current(self, k: int) -> tuple[str, str | None]:
        """(decision, reason) of row k now: facecrop's own reading of the automatic decision and the log."""
        auto_decision, auto_reason = self.auto[k]
        row = {
            "id": self.ids[k],
            "auto_decision": auto_decision,
            "auto_reason": auto_reason,
            "crop_box": [0] if self.has_crop[k] else None,
        }
        out = overrides.apply(row, self.overrides.get(self.ids[k]))
        return out["decision"], out["reason"]

    # ------------------------------------------------------------------ queries
    def counts(self) -> dict[str, Any]:
        with self.lock:
            per = np.bincount(self.state, minlength=len(self.reasons)) if self.state.size else []
            rejected = {name: int(per[k]) for k, name in enumerate(self.reasons) if k and per[k]}
            order = [r for r in rules.ORDER if r in rejected] + sorted(set(rejected) - set(rules.ORDER))
            return {
                "accepted": int(per[0]) if len(per) else 0,
                "rejected": {r: rejected[r] for r in order},
                "total": len(self.ids),
                "decisions": len(self.overrides),
            }

    def order(self, sort: str, descending: bool) -> np.ndarray:
        """Row indices sorted by `sort` (missing values last either way), cached until the manifest changes."""
        key = (sort, descending)
        if key not in self.orders:
            if sort == "id":
                base = np.argsort(np.array(self.ids, dtype=object), kind="stable")
                self.orders[key] = base[::-1].copy() if descending else base
            else:
                column = self.columns[sort]
                keyed = np.where(np.isnan(column), np.inf, -column if descending else column)
                self.orders[key] = np.argsort(keyed, kind="stable")
        return self.orders[key]

    def page(
        self, view: str, reason: str | None, sort: str, descending: bool, offset: int, limit: int
    ) -> Page:
        with self.lock:
            if view == ACCEPTED:
                wanted = 0
            else:
                if reason not in self.reasons or reason == ACCEPTED:
                    return Page(0, 0, [])
                wanted = self.reasons.index(reason)
            order = self.order(sort, descending)
            chosen = order[self.state[order] == wanted]
            offset = max(0, min(offset, max(0, chosen.size - 1)))
            rows = chosen[offset : offset + max(1, min(limit, MAX_LIMIT))]
            return Page(int(chosen.size), offset, [self.card(int(k)) for k in rows])

    def row(self, k: int) -> dict[str, Any]:
        """Row k as the manifest has it, parsed from its own line only."""
        try:
            with self.layout.crops_manifest.open("rb") as fh:
                fh.seek(int(self.offsets[k]))
                row = json.loads(fh.readline())
        except (OSError, ValueError) as exc:
            raise Stale(str(exc)) from exc
        if not isinstance(row, dict) or row.get("id") != self.ids[k]:
            raise Stale(f"row {k} of {self.layout.crops_manifest} moved")
        return row

    def find(self, crop_id: str) -> int | None:
        return self.position.get(crop_id)

    def crop_file(self, crop_id: str) -> Path | None:
        """Where the crop's PNG is now: its manifest path, or (moved by a facecrop run since) where its state puts it."""
        with self.lock:
            k = self.position.get(crop_id)
            if k is None or not self.has_crop[k]:
                return None
            row = self.row(k)
            decision, reason = self.current(k)
            candidates = [
                safe_relative(row.get("path")),
                rel_crop(crop_id),
                rel_reject(str(reason), crop_id),
                rel_reject(str(self.auto[k][1]), crop_id),
            ]
            for rel in candidates:
                if rel and (self.layout.data / rel).is_file():
                    return self.layout.data / rel
            return None

    def card(self, k: int) -> dict[str, Any]:
        """One crop as the page shows it; crawled text travels as plain JSON strings, rendered as text."""
        row = self.row(k)
        decision, reason = self.current(k)
        values = row.get("values") if isinstance(row.get("values"), dict) else {}
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        override = self.overrides.get(self.ids[k])
        card = {field: row.get(field) for field in CARD_FIELDS}
        source = safe_relative(row.get("source_path"))
        card.update(
            decision=decision,
            reason=reason,
            auto_decision=self.auto[k][0],
            auto_reason=self.auto[k][1],
            override=override.action if override else None,
            pending=(decision, reason) != (row.get("decision"), row.get("reason")),
            has_crop=bool(self.has_crop[k]),
            values={key: v for key, v in values.items() if key != "failed"},
            failed=values.get("failed") or [],
            likelihood=row.get("likelihood", values.get("likelihood")),
            source=f"/file/{source}" if source else None,
            title=meta.get("title"),
            character=meta.get("character"),
            tags=meta.get("tags"),
            deciding=self.deciding(reason, values) if decision != ACCEPTED else None,
        )
        return card

    def deciding(self, reason: str | None, values: dict[str, Any]) -> dict[str, Any] | None:
        """The rule behind a reject: its measured value, the comparison and the threshold."""
        key, value = rules.deciding_value(str(reason), values, self.thresholds)
        for rule in rules.RULES:
            if rule.reason == reason and rule.value_key == key:
                return {
                    "key": key,
                    "value": value,
                    "op": "<" if rule.fails_below else ">",
                    "threshold": getattr(self.thresholds, rule.threshold_key),
                    "meaning": rule.meaning,
                }
        meaning = rules.IMAGE_REASONS.get(str(reason)) or ("a person demoted it" if reason else None)
        return {"key": None, "value": values.get("error"), "op": None, "threshold": None, "meaning": meaning}


@dataclasses.dataclass
class ClusterRow:
    cluster_id: str
    kept: str
    members: list[str]
    why: str


class ClusterIndex:
    """The last dedup run's multi-member clusters (faces64/manifest.jsonl), biggest first, with the
    dedup decisions log applied through dedup's own `apply_decisions`."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = Layout(data_dir)
        self.lock = threading.RLock()
        self.manifest_stat: tuple[int, int, int] | None = ("never",)  # type: ignore[assignment]
        self.clusters: list[ClusterRow] = []
        self.member_of: dict[str, int] = {}
        self.decided: dict[str, decisions.Decision] = {}
        self.log_offset = 0

    def refresh(self) -> None:
        with self.lock:
            stat = _stat(self.layout.faces_manifest)
            if stat != self.manifest_stat:
                self.manifest_stat = stat
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
        clusters = []
        path = self.layout.faces_manifest
        if path.exists():
            with path.open("rb") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    duplicates = row.get("duplicates") if isinstance(row, dict) else None
                    if (
                        not isinstance(duplicates, list)
                        or not duplicates
                        or not isinstance(row.get("id"), str)
                    ):
                        continue
                    members = [row["id"], *[d for d in duplicates if isinstance(d, str)]]
                    clusters.append(
                        ClusterRow(
                            str(row.get("cluster_id", "")),
                            row["id"],
                            members,
                            str(row.get("kept_because", "")),
                        )
                    )
        clusters.sort(key=lambda c: (-len(c.members), c.kept))
        self.clusters = clusters
        self.member_of = {m: k for k, c in enumerate(clusters) for m in c.members}

    def now(self, k: int) -> list[Cluster]:
        """Cluster k as the next dedup run will make it (a split leaves members standing alone)."""
        c = self.clusters[k]
        decided = {m: self.decided[m].action for m in c.members if m in self.decided}
        return apply_decisions([Cluster(c.cluster_id, c.kept, list(c.members), c.why)], decided)

    def page(self, crops: CropIndex, offset: int, limit: int) -> Page:
        with self.lock, crops.lock:  # always this order (clusters, then crops), as actions take them
            total = len(self.clusters)
            offset = max(0, min(offset, max(0, total - 1)))
            items = [
                self.view(k, crops) for k in range(offset, min(total, offset + max(1, min(limit, MAX_LIMIT))))
            ]
            return Page(total, offset, items)

    def view(self, k: int, crops: CropIndex) -> dict[str, Any]:
        c = self.clusters[k]
        after = self.now(k)
        together = next((x for x in after if len(x.members) > 1), None)
        kept_now = together.kept if together else None
        members = []
        for crop_id in c.members:
            position = crops.find(crop_id)
            card = crops.card(position) if position is not None else {"id": crop_id, "has_crop": False}
            decision = self.decided.get(crop_id)
            card.update(
                was_kept=crop_id == c.kept,
                kept=crop_id == kept_now,
                split=bool(decision and decision.action == "split"),
                dedup_decision=decision.action if decision else None,
            )
            members.append(card)
        return {
            "index": k,
            "cluster_id": c.cluster_id,
            "kept": c.kept,
            "kept_now": kept_now,
            "why": together.why if together and kept_now != c.kept else c.why,
            "members": members,
        }

    def cluster_of(self, crop_id: str) -> int | None:
        return self.member_of.get(crop_id)


def data_summary(crops: CropIndex, clusters: ClusterIndex) -> dict[str, Any]:
    """Counts for the header and the reason tabs, with each reason's rule and threshold."""
    counts = crops.counts()
    counts["clusters"] = len(clusters.clusters)
    counts["dedup_decisions"] = len(clusters.decided)
    counts["rules"] = rules.threshold_table(crops.thresholds)
    counts["sort_keys"] = {key: label for key, (_, label) in SORT_KEYS.items()}
    counts["data"] = os.fspath(crops.layout.data)
    return counts
