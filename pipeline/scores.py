"""runs/NAME/scores.jsonl: a trained discriminator's verdict on every face of the shard.

Written by `train score`, read by the review app's "accepted, by the discriminator" view. One row per
shard face: its crop id, D's raw logit (higher reads as more like the training faces) and which
checkpoint and network gave it. The faces a trained D finds least like the rest are mostly bad crops
(a hand, the back of a head, text), so the review app lists them lowest first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from pipeline import atomic


@dataclasses.dataclass(frozen=True)
class Score:
    id: str
    score: float
    checkpoint: str  # the file the discriminator came from
    network: str  # "D" (the raw discriminator: the trainer keeps no EMA of D)
    step: int


def write_scores(path: Path, rows: Iterable[Score]) -> int:
    """Replace the file as a whole, so a reader never sees half a ranking."""
    return atomic.write_jsonl(path, (dataclasses.asdict(r) for r in rows))


def read_scores(path: Path) -> list[Score]:
    """Every row, in file order; rows that are not score rows are skipped, not guessed at."""
    fields = {f.name for f in dataclasses.fields(Score)}
    return [Score(**row) for row in atomic.read_jsonl(path) if isinstance(row, dict) and set(row) == fields]
