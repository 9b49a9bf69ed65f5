"""`make bench-gpu`'s report as the bench table: one line per row, with its goal and what it left out."""

from __future__ import annotations

from typing import Any

from bench.report import BenchResult

GOAL_AT_64 = 10.0  # >= 10x the example loop at batch 64, on one H100/H200
GOAL_AT_512 = 20_000.0  # >= 20,000 img/s at batch 512


def label(row: dict[str, Any]) -> str:
    return f"{row['loop']} b{row['batch']} {row['precision']} compile={row['compile']}"


def tests_row(tests: dict[str, Any]) -> BenchResult:
    if "tests" not in tests:
        return BenchResult(
            "gpu", "cuda tests", 0.0, None, "tests", True, "all", f"not run: {tests.get('not_run')}"
        )
    note = f"failed {tests['failed']}, errors {tests['errors']}, skipped {tests['skipped']}"
    if tests.get("cut"):
        note += f"; {tests['cut']}"
    return BenchResult(
        "gpu",
        "cuda tests passed / run",
        float(tests["passed"]),
        float(tests["tests"]),
        "tests",
        True,
        "all",
        note,
    )


def throughput_row(row: dict[str, Any], example: dict[int, float | None]) -> BenchResult:
    name = f"img/s {label(row)}" + (" vs example" if row["loop"] == "ours" else "")
    goal = ""
    if row["loop"] == "ours" and row["batch"] == 64:
        goal = f">= {GOAL_AT_64:.0f}x example"
    elif row["loop"] == "ours" and row["batch"] == 512:
        goal = f">= {GOAL_AT_512:,.0f} img/s"
    baseline = example.get(row["batch"]) if row["loop"] == "ours" else None
    return BenchResult("gpu", name, row.get("img_per_s", 0.0), baseline, "img/s", True, goal, _note(row))


def _note(row: dict[str, Any]) -> str:
    if row.get("not_run"):
        return str(row["not_run"])
    if row.get("cut"):
        return f"cut: {row['cut']}"
    if row.get("error"):
        return f"failed: {str(row['error'])[:300]}"
    note = (
        f"epoch of 60,000 faces {row['epoch_60k_s']} s; host-wait share {row['host_wait_share']}; "
        f"host syncs/step {row['syncs_per_step']}; warm-up {row['warmup_s']} s"
    )
    if "recompiles" in row:
        note += f"; recompiles {row['recompiles']}"
    return note


def quality_rows(quality: list[dict[str, Any]]) -> list[BenchResult]:
    rows = []
    for q in quality:
        if "name" in q:
            rows.append(BenchResult(**q))
        else:
            why = q.get("not_run") or q.get("cut") or q.get("error") or "not reached"
            rows.append(BenchResult("gpu", "quality row", 0.0, None, "FID", False, "", f"not run: {why}"))
    return rows


def table(report: dict[str, Any]) -> list[BenchResult]:
    example = {r["batch"]: r.get("img_per_s") for r in report["throughput"] if r["loop"] == "example"}
    rows = [throughput_row(r, example) for r in report["throughput"]]
    return rows + [tests_row(report["tests"])] + quality_rows(report["quality"])


def stage_rows(report: dict[str, Any], kind: str, spec: dict[str, Any]) -> list[BenchResult]:
    """The lines one finished stage adds to the table."""
    if kind == "tests":
        return [tests_row(report["tests"])]
    if kind == "quality":
        return quality_rows(report["quality"])
    example = {r["batch"]: r.get("img_per_s") for r in report["throughput"] if r["loop"] == "example"}
    return [
        throughput_row(r, example)
        for r in report["throughput"]
        if all(r.get(k) == v for k, v in spec.items())
    ]
