"""One row per measurement, printed side by side with its baseline and the ratio."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class BenchResult:
    """`ours` and `baseline` are in `unit`; `higher_is_better` decides which way the ratio reads."""

    stage: str
    name: str
    ours: float
    baseline: float | None
    unit: str
    higher_is_better: bool = True
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.ours == 0:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours


def format_table(results: list[BenchResult]) -> str:
    header = f"{'stage':<9} {'measurement':<44} {'ours':>12} {'baseline':>12} {'unit':<10} {'ratio':>7}  goal"
    lines = [header, "-" * len(header)]
    for r in results:
        base = "" if r.baseline is None else f"{r.baseline:12.3f}"
        ratio = "" if r.ratio is None else f"{r.ratio:6.2f}x"
        lines.append(f"{r.stage:<9} {r.name:<44} {r.ours:12.3f} {base:>12} {r.unit:<10} {ratio:>7}  {r.goal}")
        if r.note:
            lines.append(f"{'':<9}   {r.note}")
    return "\n".join(lines)
