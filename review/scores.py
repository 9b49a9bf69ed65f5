"""The "accepted, by the discriminator" view: the accepted crops a trained D scored, lowest score first.

A discriminator trained on the shard learns what its faces look like, so the faces it finds least
like the rest are mostly bad crops (a hand, the back of a head, text, a face cut off): a person
reads the bottom of that ranking and demotes what should not be in the dataset.

The file comes only from the command line (`--scores`) or, without it, is the newest
`runs/*/scores.jsonl` under `--runs-dir`; a request never names one. It is read through
`pipeline.scores` (the contract `train score` writes) once, and again only when `train score`
replaces it or facecrop rewrites the crops manifest; the scores become one more numpy column
beside CropIndex's, so a page is the same filter and cached sort as the accepted view.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.scores import read_scores
from review.sources import Filter
from review.views import CropIndex, Page, file_stamp, page_bounds

HOW = "animefaces score --ckpt runs/NAME/best.pt"
FILE_NAME = "scores.jsonl"  # what RunLayout(run).scores names inside a run


@dataclasses.dataclass(frozen=True)
class ScoreSource:
    """Where the scores come from: a file a person named, else the newest one a run wrote."""

    given: Path | None = None
    runs_dir: Path | None = None

    def find(self) -> Path | None:
        """The file to read now: looked up again, so scoring a new run shows on the next page load."""
        if self.given is not None:
            return self.given
        if self.runs_dir is None:
            return None
        found = []
        for path in self.runs_dir.glob(f"*/{FILE_NAME}"):
            stamp = file_stamp(path)
            if stamp is not None and path.is_file():
                found.append((stamp[1], str(path), path))
        return max(found)[2] if found else None


@dataclasses.dataclass
class ScoreFile:
    """The usable rows of one scores file and the checkpoint most of them came from."""

    ids: list[str]
    values: np.ndarray
    checkpoint: str | None = None
    step: int | None = None
    network: str | None = None
    other_checkpoints: int = 0  # rows scored by another checkpoint than the one named


def read_file(path: Path) -> ScoreFile:
    """Each id's score (the last row wins); a row with no finite number for a score is left out,
    since a card cannot be ranked by it."""
    by_id: dict[str, float] = {}
    origins: collections.Counter[tuple[Any, Any, Any]] = collections.Counter()
    for row in read_scores(path):
        value = row.score
        if not isinstance(row.id, str) or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            continue
        by_id[row.id] = float(value)
        origins[(row.checkpoint, row.step, row.network)] += 1
    file = ScoreFile(list(by_id), np.fromiter(by_id.values(), np.float64, len(by_id)))
    if origins:
        (checkpoint, step, network), count = origins.most_common(1)[0]
        file.checkpoint, file.step, file.network = str(checkpoint), step, str(network)
        file.other_checkpoints = sum(origins.values()) - count
    return file


class ScoreIndex:
    """The scores as a column over CropIndex's rows; every method runs under the crops' lock."""

    def __init__(self, source: ScoreSource) -> None:
        self.source = source
        self.path: Path | None = None
        self.stamp: Any = ("never",)
        self.file: ScoreFile | None = None
        self.error: str | None = None
        self.built_for: Any = None  # (file stamp, crops generation) the column was built for
        self.column = np.zeros(0, np.float64)  # the score of each crops row, NaN where it has none
        self.orders: dict[bool, np.ndarray] = {}

    def refresh(self, crops: CropIndex) -> None:
        """Reads the file when it is new or replaced; lines the scores up again when the manifest moved."""
        with crops.lock:
            path = self.source.find()
            stamp = (path, file_stamp(path) if path is not None else None)
            if stamp != self.stamp:
                self.path, self.file, self.error = path, None, None
                if path is not None and stamp[1] is not None:
                    try:
                        self.file = read_file(path)
                    except OSError as exc:
                        self.error = f"cannot read {path}: {exc.strerror or exc}"
                self.stamp = stamp
            if (stamp, crops.generation) != self.built_for:
                self._align(crops)
                self.built_for = (stamp, crops.generation)

    def _align(self, crops: CropIndex) -> None:
        column = np.full(len(crops.ids), np.nan)
        if self.file is not None:
            where = crops.position
            for crop_id, value in zip(self.file.ids, self.file.values.tolist(), strict=True):
                k = where.get(crop_id)
                if k is not None:
                    column[k] = value
        self.column = column
        self.orders = {False: self._order(False)}  # the view's default order, so a first page only slices

    def _order(self, descending: bool) -> np.ndarray:
        keyed = np.where(np.isnan(self.column), np.inf, -self.column if descending else self.column)
        return np.argsort(keyed, kind="stable")

    def order(self, descending: bool) -> np.ndarray:
        if descending not in self.orders:
            self.orders[descending] = self._order(descending)
        return self.orders[descending]

    def shown(self, crops: CropIndex) -> np.ndarray:
        """The view's rows: accepted now (a person's decisions included) and scored."""
        return (crops.state == 0) & ~np.isnan(self.column)

    def page(self, crops: CropIndex, filt: Filter, descending: bool, offset: int, limit: int) -> Page:
        with crops.lock:
            self.refresh(crops)
            narrow = crops.filter_mask(filt)
            mask = self.shown(crops)
            if narrow is not None:
                mask &= narrow
            in_range = filt.in_range(self.column)
            if in_range is not None:
                mask &= in_range
            order = self.order(descending)
            chosen = order[mask[order]]
            first, end = page_bounds(chosen.size, offset, limit)
            ks = [int(k) for k in chosen[first:end]]
            cards = crops.cards(ks)
            for k, card in zip(ks, cards, strict=True):
                card["score"] = float(self.column[k])
            counts = crops.counts(narrow) if narrow is not None else None
            return Page(int(chosen.size), first, cards, counts)

    def summary(self, crops: CropIndex) -> dict[str, Any]:
        """What the page says about the file: where it is, what scored it, and what of it is shown."""
        with crops.lock:
            self.refresh(crops)
            accepted = crops.state == 0
            scored = ~np.isnan(self.column)
            shown = int(np.count_nonzero(accepted & scored))
            out: dict[str, Any] = {
                "file": str(self.path) if self.path is not None else None,
                "given": self.source.given is not None,
                "runs_dir": str(self.source.runs_dir) if self.source.runs_dir is not None else None,
                "how": HOW,
                "error": self.error,
                "missing": self.path is not None and self.file is None and self.error is None,
                "shown": shown,
                "unscored": int(np.count_nonzero(accepted & ~scored)),
            }
            if self.file is not None:
                out.update(
                    rows=len(self.file.ids),
                    ignored=len(self.file.ids) - shown,  # ids that are no accepted crop now
                    checkpoint=self.file.checkpoint,
                    step=self.file.step,
                    network=self.file.network,
                    other_checkpoints=self.file.other_checkpoints,
                )
            return out
