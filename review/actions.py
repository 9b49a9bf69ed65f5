"""The writes: promote/demote/undo on crops, split/keep/undo on clusters, each as appended log rows only.

Every decision goes through `pipeline.decisions` (the functions the CLI's promote/demote use),
which appends a batch as one fsynced write under an flock, so two tabs (or the CLI beside
the app) lose nothing and a stage reading the log never sees half a batch. The app itself
never moves a file or rewrites a manifest: the next facecrop and dedup runs apply the logs.
Each answer carries the decisions it replaced (`previous`), so undo is one more append
that puts them back (`clear` where there was none).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pipeline import decisions
from review import images
from review.clusters import ClusterIndex
from review.views import CropIndex

CROP_ACTIONS = ("promote", "demote", decisions.CLEAR)
CLUSTER_ACTIONS = ("split", "keep", decisions.CLEAR)
MAX_BATCH = 10_000


class ActionError(ValueError):
    """A request the app refuses (unknown id, bad action or reason); the message is shown to the person."""


def _items(body: Any, allowed: tuple[str, ...]) -> list[tuple[str, str, str | None]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ActionError('expected {"items": [{"id": ..., "action": ...}, ...]}')
    if len(items) > MAX_BATCH:
        raise ActionError(f"at most {MAX_BATCH} decisions per request")
    out = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or item.get("action") not in allowed
        ):
            raise ActionError(f"each item needs an 'id' and an 'action' out of {', '.join(allowed)}")
        reason = item.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ActionError("'reason' must be a string")
        out.append((item["id"], item["action"], reason or None))
    return out


def _previous(decision: decisions.Decision | None, crop_id: str) -> dict[str, Any]:
    if decision is None:
        return {"id": crop_id, "action": decisions.CLEAR, "reason": None}
    return {"id": crop_id, "action": decision.action, "reason": decision.reason}


class Actions:
    """Validates a batch against what the app shows, appends it, and answers with the new state."""

    def __init__(self, data_dir: Path, crops: CropIndex, clusters: ClusterIndex) -> None:
        self.data = Path(data_dir)
        self.crops = crops
        self.clusters = clusters
        self.lock = threading.Lock()  # one batch at a time, so `previous` is exact for undo

    def decide_crops(self, body: Any) -> dict[str, Any]:
        items = _items(body, CROP_ACTIONS)
        with self.lock, self.crops.lock:
            self.crops.refresh()
            for crop_id, _, _ in items:
                k = self.crops.find(crop_id)
                if k is None or not self.crops.has_crop[k]:
                    raise ActionError(
                        f"no crop {crop_id!r} to promote or demote (image-level rows have none)"
                    )
            previous = [_previous(self.crops.overrides.get(crop_id), crop_id) for crop_id, _, _ in items]
            try:
                decisions.record_overrides(self.data, items)
            except decisions.BadDecision as exc:
                raise ActionError(str(exc)) from exc
            self.crops.refresh()
            cards = [
                self.crops.card(self.crops.find(crop_id)) for crop_id in dict.fromkeys(i for i, _, _ in items)
            ]
            counts = {**self.crops.counts(), "noface": images.image_summary(self.crops)["noface"]}
            return {"items": cards, "previous": previous, "counts": counts}

    def decide_clusters(self, body: Any) -> dict[str, Any]:
        items = [(crop_id, action) for crop_id, action, _ in _items(body, CLUSTER_ACTIONS)]
        with self.lock, self.clusters.lock, self.crops.lock:
            self.clusters.refresh()
            self.crops.refresh()
            touched: dict[int, None] = {}
            rows: list[tuple[str, str]] = []
            for crop_id, action in items:
                k = self.clusters.cluster_of(crop_id)
                if k is None:
                    raise ActionError(f"{crop_id!r} is in no duplicate cluster of the last dedup run")
                touched[k] = None
                if action == "keep":
                    # One keeper per cluster: a person's earlier "keep" on another member is withdrawn.
                    rows += [
                        (m, decisions.CLEAR)
                        for m in self.clusters.clusters[k].members
                        if m != crop_id and (d := self.clusters.decided.get(m)) and d.action == "keep"
                    ]
                rows.append((crop_id, action))
            previous = [
                _previous(self.clusters.decided.get(crop_id), crop_id)
                for crop_id in dict.fromkeys(i for i, _ in rows)
            ]
            decisions.record_dedup_decisions(self.data, rows)
            self.clusters.refresh()
            return {"clusters": [self.clusters.view(k, self.crops) for k in touched], "previous": previous}
