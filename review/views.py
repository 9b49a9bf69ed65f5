"""What the pages show: the crops as facecrop left them, with a person's newer decisions on top.

Built to stay fast at 100,000 crops: the crops manifest is scanned once (and again only
when facecrop rewrites it, or the crawler the raw manifest) into numpy columns (state, each
measured value, the source image) plus each row's byte offset; a page request filters and
sorts those columns and parses only the rows it shows, straight from the file. The decision
log only grows, so each line of it is read once (`pipeline.decisions.read_new`) and a
decision updates the columns of its ids only.

Current state = the manifest's automatic decision + the overrides log, through facecrop's
own `overrides.apply`: the page shows what the next `make dataset` will produce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facecrop import overrides, rules
from facecrop.config import Thresholds
from pipeline import decisions
from pipeline.layout import Layout, rel_crop, rel_reject
from pipeline.manifests import safe_relative
from review.sources import Filter, SourceTable, picture

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
ALL_REASONS = "all"  # the rejects view over every reason at once (what "this image" opens)
MAX_LIMIT = 500
CARD_FIELDS = ("id", "source_sha256", "source_size", "box", "crop_box", "size", "site", "url", "page_url")


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """A scan of 100,000 rows keeps 100,000 small objects alive, and Python's cycle collector would
    walk all of them again and again while they pile up (a third of the scan); parsing JSON makes
    no cycles, so it is paused for the scan."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def file_stamp(path: Path) -> tuple[int, int, int] | None:
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
    counts: dict[str, Any] | None = None  # per view and reason within the filter, when one is set


def page_bounds(total: int, offset: int, limit: int) -> tuple[int, int]:
    """(first, end) of a page: an offset past the end shows the last row, a limit is 1..MAX_LIMIT."""
    first = max(0, min(offset, max(0, total - 1)))
    return first, min(total, first + max(1, min(limit, MAX_LIMIT)))


@dataclasses.dataclass
class _Scan:
    """The columns while the manifest is read, one entry per usable row."""

    ids: list[str] = dataclasses.field(default_factory=list)
    offsets: list[int] = dataclasses.field(default_factory=list)
    has_crop: list[bool] = dataclasses.field(default_factory=list)
    auto: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    auto_state: list[int] = dataclasses.field(default_factory=list)
    src: list[int] = dataclasses.field(default_factory=list)
    values: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {key: [] for key in [*SORT_KEYS, VALUE]}
    )


class CropIndex:
    """Columns over crops/manifest.jsonl; `refresh()` before reading picks up a rewrite or new log rows."""

    def __init__(self, data_dir: Path, thresholds: Thresholds) -> None:
        self.layout = Layout(data_dir)
        self.thresholds = thresholds
        self.lock = threading.RLock()
        self.manifest_stat: Any = ("never",)
        self.generation = 0  # bumped on every reload, so other indexes know their positions moved
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.offsets = np.zeros(0, np.int64)
        self.has_crop = np.zeros(0, bool)
        self.auto_state = np.zeros(0, np.int32)
        self.state = np.zeros(0, np.int32)
        self.src = np.zeros(0, np.int32)  # the source image of each row (a code into `sources`)
        self.by_source = np.zeros(0, np.int64)  # row indices grouped by source ...
        self.source_start = np.zeros(1, np.int64)  # ... rows of source s: by_source[start[s]:start[s + 1]]
        self.sources = SourceTable()
        self.columns: dict[str, np.ndarray] = {}
        self.reasons: list[str] = [ACCEPTED]  # state code -> "accepted" or a reject reason
        self.auto: list[tuple[str, str | None]] = []  # (auto_decision, auto_reason) per row
        self.overrides: dict[str, decisions.Decision] = {}  # the standing ones
        self.log_offset = 0
        self.orders: dict[tuple[str, bool], np.ndarray] = {}
        self.derived: dict[tuple[Any, ...], Any] = {}  # other modules' sums over the columns, by their key

    # ------------------------------------------------------------------ loading
    def code(self, decision: str | None, reason: str | None) -> int:
        name = ACCEPTED if decision == ACCEPTED else str(reason)
        if name not in self.reasons:
            self.reasons.append(name)
        return self.reasons.index(name)

    def refresh(self) -> None:
        with self.lock:
            stat = (file_stamp(self.layout.crops_manifest), file_stamp(self.layout.raw_manifest))
            if stat != self.manifest_stat:
                with no_gc_pauses():
                    self._load_manifest()
                self.manifest_stat = stat
                self.overrides, self.log_offset = {}, 0
                self.generation += 1
            self._read_log()

    def _load_manifest(self) -> None:
        scan, sources = _Scan(), SourceTable()
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
                    if isinstance(row, dict) and isinstance(row.get("id"), str):
                        self._scan_row(scan, sources, row, start)
        sources.read_raw(self.layout.raw_manifest)
        self.ids = scan.ids
        self.position = {crop_id: k for k, crop_id in enumerate(scan.ids)}
        self.offsets = np.array(scan.offsets, np.int64)
        self.has_crop = np.array(scan.has_crop, bool)
        self.auto = scan.auto
        self.auto_state = np.array(scan.auto_state, np.int32)
        self.state = self.auto_state.copy()
        self.src = np.array(scan.src, np.int32)
        self.by_source = np.argsort(self.src, kind="stable")
        self.source_start = np.searchsorted(self.src[self.by_source], np.arange(len(sources) + 1))
        self.sources = sources
        self.columns = {key: np.array(column, np.float64) for key, column in scan.values.items()}
        self.orders = {}
        for sort in (VALUE, "likelihood"):  # the two views' default orders, so a first page only slices
            self.order(sort, False)

    def _scan_row(self, scan: _Scan, sources: SourceTable, row: dict[str, Any], start: int) -> None:
        vals = row.get("values") if isinstance(row.get("values"), dict) else {}
        decision = row.get("auto_decision", row.get("decision"))
        reason = row.get("auto_reason", row.get("reason"))
        sha = row.get("source_sha256")
        sha = sha.lower() if isinstance(sha, str) and sha else row["id"].split("_")[0]
        scan.ids.append(row["id"])
        scan.offsets.append(start)
        scan.has_crop.append(row.get("crop_box") is not None)
        scan.auto.append((decision, reason))
        scan.auto_state.append(self.code(decision, reason))
        scan.src.append(sources.add(sha, row, row.get("source_path")))
        for key, (name, _) in SORT_KEYS.items():
            scan.values[key].append(_number(vals.get(name, row.get(name))))
        decided = (
            rules.deciding_value(str(reason), vals, self.thresholds)[1] if decision != ACCEPTED else None
        )
        scan.values[VALUE].append(_number(decided))

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
    def counts(self, within: np.ndarray | None = None) -> dict[str, Any]:
        """Crops per state (of the rows `within` selects, or all), rejects in facecrop's reason order."""
        with self.lock:
            states = self.state if within is None else self.state[within]
            per = np.bincount(states, minlength=len(self.reasons))
            rejected = {name: int(per[k]) for k, name in enumerate(self.reasons) if k and per[k]}
            order = [r for r in rules.ORDER if r in rejected] + sorted(set(rejected) - set(rules.ORDER))
            return {
                "accepted": int(per[0]),
                "rejected": {r: rejected[r] for r in order},
                "total": len(self.ids) if within is None else int(states.size),
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

    def filter_mask(self, filt: Filter) -> np.ndarray | None:
        """Rows whose source passes the filter's text, site and image; None when the filter names none.

        A word with an underscore may also be part of a crop id (`25f19a…_693`)."""
        if not filt.narrows_sources:
            return None
        keep = self.sources.narrow(filt)[self.src]
        for term in filt.terms:
            hit = self.sources.term(term)[self.src]
            if "_" in term:
                hit |= np.fromiter((term in i for i in self.ids), bool, len(self.ids))
            keep &= hit
        return keep

    def wanted(self, view: str, reason: str | None) -> np.ndarray | None:
        """The rows of a view and reason tab (None: no such reason)."""
        if view == ACCEPTED:
            return self.state == 0
        if reason == ALL_REASONS:
            return self.state != 0
        if reason not in self.reasons or reason == ACCEPTED:
            return None
        return self.state == self.reasons.index(reason)

    def page(
        self,
        view: str,
        reason: str | None,
        sort: str,
        descending: bool,
        offset: int,
        limit: int,
        filt: Filter | None = None,
    ) -> Page:
        filt = filt or Filter()
        with self.lock:
            narrow = self.filter_mask(filt)
            counts = self.counts(narrow) if narrow is not None else None
            wanted = self.wanted(view, reason)
            if wanted is None:
                return Page(0, 0, [], counts)
            mask = wanted if narrow is None else wanted & narrow
            in_range = filt.in_range(self.columns[sort]) if sort in self.columns else None
            if in_range is not None:
                mask &= in_range
            order = self.order(sort, descending)
            chosen = order[mask[order]]
            first, end = page_bounds(chosen.size, offset, limit)
            return Page(int(chosen.size), first, self.cards([int(k) for k in chosen[first:end]]), counts)

    def rows_of(self, code: int) -> list[int]:
        """Every row of one source image, in manifest order."""
        start, end = self.source_start[code], self.source_start[code + 1]
        return sorted(int(k) for k in self.by_source[start:end])

    def row(self, k: int) -> dict[str, Any]:
        """Row k as the manifest has it, parsed from its own line only."""
        return self.rows([k])[0]

    def rows(self, ks: list[int]) -> list[dict[str, Any]]:
        """Rows ks as the manifest has them, each parsed from its own line (the file opened once)."""
        out = []
        try:
            with self.layout.crops_manifest.open("rb") as fh:
                for k in ks:
                    fh.seek(int(self.offsets[k]))
                    out.append(json.loads(fh.readline()))
        except (OSError, ValueError) as exc:
            raise Stale(str(exc)) from exc
        for k, row in zip(ks, out, strict=True):
            if not isinstance(row, dict) or row.get("id") != self.ids[k]:
                raise Stale(f"row {k} of {self.layout.crops_manifest} moved")
        return out

    def cards(self, ks: list[int]) -> list[dict[str, Any]]:
        return [self.card(k, row) for k, row in zip(ks, self.rows(ks), strict=True)]

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

    def card(self, k: int, row: dict[str, Any] | None = None) -> dict[str, Any]:
        """One crop as the page shows it; crawled text travels as plain JSON strings, rendered as text."""
        row = row if row is not None else self.row(k)
        decision, reason = self.current(k)
        values = row.get("values") if isinstance(row.get("values"), dict) else {}
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        override = self.overrides.get(self.ids[k])
        card = {field: row.get(field) for field in CARD_FIELDS}
        source = safe_relative(row.get("source_path"))
        failed = values.get("failed") if isinstance(values.get("failed"), list) else []
        likelihood = row.get("likelihood", values.get("likelihood"))
        card.update(
            picture(row.get("site"), row.get("url"), meta, row.get("source_path")),
            decision=decision,
            reason=reason,
            auto_decision=self.auto[k][0],
            auto_reason=self.auto[k][1],
            override=override.action if override else None,
            pending=(decision, reason) != (row.get("decision"), row.get("reason")),
            has_crop=bool(self.has_crop[k]),
            values={key: v for key, v in values.items() if key != "failed"},
            failed=failed,
            also=[r for r in failed if r != reason],  # the rules it failed besides the one shown
            likelihood=likelihood,
            verified=likelihood is not None,  # False: the verifier never ran on this box
            source=f"/file/{source}" if source else None,
            source_path=source,
            title=meta.get("title"),
            tags=meta.get("tags"),
            deciding=deciding(reason, values, self.thresholds) if decision != ACCEPTED else None,
        )
        return card


def deciding(reason: str | None, values: dict[str, Any], thresholds: Thresholds) -> dict[str, Any] | None:
    """The rule behind a reject: its measured value, the comparison and the threshold."""
    key, value = rules.deciding_value(str(reason), values, thresholds)
    for rule in rules.RULES:
        if rule.reason == reason and rule.value_key == key:
            return {
                "key": key,
                "value": value,
                "op": "<" if rule.fails_below else ">",
                "threshold": getattr(thresholds, rule.threshold_key),
                "meaning": rule.meaning,
            }
    meaning = rules.IMAGE_REASONS.get(str(reason)) or ("a person demoted it" if reason else None)
    return {"key": None, "value": values.get("error"), "op": None, "threshold": None, "meaning": meaning}
