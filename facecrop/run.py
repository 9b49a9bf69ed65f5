"""One facecrop run: plan what is new, fan it out over worker processes, then publish.

Publishing (manifest, file placement, rejects page) happens once at the end from the
SQLite state, so whatever the order workers finish in, and however often the run was
killed before, the manifest comes out the same.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import logging
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from tqdm import tqdm

from facecrop import decide, manifest, rejects_page, worker
from facecrop.config import FacecropConfig
from facecrop.sources import Sources, read_sources
from facecrop.state import State
from pipeline import atomic, pool
from pipeline.decisions import read_overrides
from pipeline.digest import file_digest
from pipeline.layout import Layout

logger = logging.getLogger(__name__)

COMMIT_EVERY_SECONDS = 1.0


@dataclasses.dataclass
class RunResult:
    counts: dict[str, Any]
    page: Path
    timing: dict[str, float]


def plan(
    jobs: list[worker.Job],
    stored: dict,
    fingerprint: str,
    files: dict[str, list[str]],
    config: FacecropConfig,
) -> tuple[list[worker.Job], list[tuple[str, str, list[dict[str, Any]]]]]:
    """Sources to (re)do — new, detected with other settings, a crop file gone missing, or a row
    that now needs a verdict it never got — and sources merely decided again from stored values."""
    todo, redecided = [], []
    for job in jobs:
        entry = stored.get(job.sha256)
        if entry is None or entry[0] != fingerprint:
            todo.append(job)
            continue
        rows = entry[1]
        retry = any(row.get("reason") == "process_error" for row in rows)  # may have been transient
        if retry or any(row.get("crop_box") is not None and row["id"] not in files for row in rows):
            todo.append(job)
            continue
        again = [decide.redecide(row, config) for row in rows]
        if any(row is None for row in again):
            todo.append(job)
        elif again != rows:
            redecided.append((job.sha256, fingerprint, again))
    return todo, redecided


def _file_size(data_dir: Path, rel: str) -> int:
    try:
        return (data_dir / rel).stat().st_size if rel else 0
    except OSError:
        return 0


def _pool_run(
    jobs: list[worker.Job], workers: int, initargs: tuple, finished, task=worker.run_job
) -> tuple[set[str], list[worker.Job]]:
    """Run `jobs` in worker processes, handing each result to `finished`.

    Returns the sha256 of every finished job and, if a worker process died (OOM killer, a
    crash inside OpenCV or animeface), the jobs that were in flight then; jobs never
    submitted are neither, so the caller re-queues them.
    """
    # Forkserver workers (`pipeline.pool`): a process that already ran OpenCV's thread pool (a
    # caller, the benchmark) hangs its forked children in cv2.setNumThreads.
    completed: set[str] = set()
    in_flight: dict[cf.Future, worker.Job] = {}

    def collect(future: cf.Future) -> None:
        finished(future.result())
        completed.add(in_flight.pop(future).sha256)

    try:
        with pool.process_pool(workers, ["facecrop.worker"], worker.init, (*initargs, 1)) as executor:
            try:
                for job in jobs:
                    in_flight[executor.submit(task, job)] = job
                    if len(in_flight) >= workers * 4:
                        done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
                        for future in done:
                            collect(future)
                for future in cf.as_completed(list(in_flight)):
                    collect(future)
            except KeyboardInterrupt:
                executor.shutdown(wait=True, cancel_futures=True)  # let started images finish, drop the rest
                raise
    except BrokenProcessPool:
        suspects = []
        for future, job in list(in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                collect(future)
            else:
                suspects.append(job)
        return completed, suspects
    return completed, []


def run_pooled(jobs: list[worker.Job], workers: int, initargs: tuple, finished, task=worker.run_job) -> None:
    """`_pool_run` until every job is finished, surviving worker processes that die; `task` is
    `worker.run_job` for a run, `worker.dry_job` to decide without writing."""
    queue = jobs
    while queue:
        completed, suspects = _pool_run(queue, workers, initargs, finished, task)
        if suspects:
            logger.warning(
                "a worker process died (killed, or crashed in native code); "
                "retrying its %d unfinished image(s) one at a time",
                len(suspects),
            )
        for job in suspects:
            # Alone, an image that kills its worker is found out and recorded, not retried forever.
            if _pool_run([job], 1, initargs, finished, task)[1]:
                finished(
                    (
                        job.sha256,
                        [worker.image_row(job, "process_error", "the worker process died on this image", {})],
                        {},
                    )
                )
        unfinished = {job.sha256 for job in suspects} | completed
        queue = [job for job in queue if job.sha256 not in unfinished]


def worker_count(config: FacecropConfig) -> int:
    return pool.worker_count(config.workers)


def execute(
    todo: list[worker.Job],
    config: FacecropConfig,
    data_dir: Path,
    cascade_path: Path,
    state: State,
    fingerprint: str,
    progress: bool,
) -> dict[str, float]:
    """Process `todo`, committing finished sources to `state` at least once a second."""
    timing: dict[str, float] = collections.Counter()
    pending: list[tuple[str, str, list[dict[str, Any]]]] = []
    last_commit = time.monotonic()
    bar = tqdm(total=len(todo), desc="facecrop", unit="img", file=sys.stderr, disable=not progress)

    def finished(result: tuple[str, list[dict[str, Any]], dict[str, float]]) -> None:
        nonlocal last_commit
        sha, rows, spent = result
        pending.append((sha, fingerprint, rows))
        timing.update(spent)
        bar.update(1)
        if time.monotonic() - last_commit >= COMMIT_EVERY_SECONDS:
            state.save(pending)
            pending.clear()
            last_commit = time.monotonic()

    workers = min(worker_count(config), max(1, len(todo)))
    if workers > 1:
        # Largest files first: a 6-megapixel image started last would leave the other workers idle.
        todo = sorted(todo, key=lambda job: -_file_size(data_dir, job.path))
    initargs = (str(cascade_path), config, str(data_dir))
    try:
        if workers == 1:
            # In-process: OpenCV may use its own threads (0 = its default) since nothing else competes.
            worker.init(*initargs, 0)
            for job in todo:
                finished(worker.run_job(job))
        else:
            run_pooled(todo, workers, initargs, finished)
    finally:
        state.save(pending)
        bar.close()
    return dict(timing)


def run(
    config: FacecropConfig, data_dir: Path, cascade_path: Path, progress: bool = True, verify: bool = False
) -> RunResult:
    """Plan what is new, process it, then publish the manifest, the files and the rejects page from the state.

    Every crop file is checked against what was recorded when it was written (`pipeline.ledger`:
    size and mtime, the sha256 of those that moved; every sha256 with `verify`) and a damaged one
    is made again; so is each raw image facecrop reads, against its sha256 name.
    """
    layout = Layout(data_dir)
    layout.crops_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(layout.crops_dir)
    atomic.remove_stale_temps(layout.rejects_dir)
    sources = read_sources(data_dir)
    for line in sources.skipped[:20]:
        logger.warning("%s", line)
    fingerprint = config.fingerprint(file_digest(cascade_path))
    state = State(data_dir)
    try:
        stored = state.load()
        unusable = check_raw(state, data_dir, [job for job in sources.jobs if job.sha256 in stored], verify)
        files = check_crops(state, data_dir, verify)
        jobs = [job for job in sources.jobs if job.sha256 not in unusable]
        todo, redecided = plan(jobs, stored, fingerprint, files, config)
        state.save(redecided)
        timing = execute(todo, config, data_dir, cascade_path, state, fingerprint, progress)
        stored = state.load()
        published = [job for job in sources.jobs if job.sha256 in stored]
        rows = publish(data_dir, [row for job in published for row in stored[job.sha256][1]], config)
        done = {job.sha256 for job in todo}
        state.crop_files.record(
            (row["id"], data_dir / row["path"])
            for row in rows
            if row.get("path") and row["source_sha256"] in done
        )
        state.raw_files.record((job.sha256, data_dir / job.path) for job in todo if job.path)
    finally:
        state.close()
    counts = summary_counts(rows, sources, todo, redecided, timing)
    counts["raw images missing or damaged"] = len(unusable)
    return RunResult(counts, rejects_page.page_path(data_dir), timing)


def check_raw(state: State, data_dir: Path, jobs: list[worker.Job], verify: bool) -> set[str]:
    """sha256 of the raw images done before that are gone or no longer match their name: left as they
    were (their earlier crops stay), with a warning, until the crawler fetches them again. (An image
    never read before goes to the worker, which records a missing or unreadable one as a decode_error.)"""
    checked = state.raw_files.check(
        {job.sha256: data_dir / job.path for job in jobs if job.path},
        verify=verify,
        expected={job.sha256: job.sha256 for job in jobs},
    )
    paths = {job.sha256: job.path for job in jobs}
    for what, keys in (
        ("missing", checked.missing),
        ("damaged (its bytes no longer match its sha256)", checked.damaged),
    ):
        if keys:
            logger.warning(
                "%d raw image(s) %s, e.g. %s; their crops are kept as they were. Fetch them again with "
                "`python -m crawler --verify`",
                len(keys),
                what,
                data_dir / paths[keys[0]],
            )
    return set(checked.bad)


def check_crops(state: State, data_dir: Path, verify: bool) -> dict[str, list[str]]:
    """Every crop file on disk by id (`manifest.crop_files`), less those that changed since they were
    written: those are deleted, so `plan` makes them again from their source."""
    files = manifest.crop_files(data_dir)
    checked = state.crop_files.check(
        {crop_id: data_dir / paths[0] for crop_id, paths in files.items()}, verify=verify
    )
    if checked.damaged:
        logger.warning(
            "%d crop file(s) changed since they were written, e.g. %s; making them again",
            len(checked.damaged),
            data_dir / files[checked.damaged[0]][0],
        )
    for crop_id in checked.damaged:
        for rel in files.pop(crop_id):
            (data_dir / rel).unlink(missing_ok=True)
    state.crop_files.forget(checked.damaged)
    return files


def publish(data_dir: Path, automatic: list[dict[str, Any]], config: FacecropConfig) -> list[dict[str, Any]]:
    """Apply a person's overrides, put every crop file where its row says, write the manifest and the page."""
    rows = manifest.final_rows(automatic, read_overrides(data_dir))
    files = manifest.crop_files(data_dir)
    missing = manifest.place_files(data_dir, rows, files)
    if missing:
        # Only possible if files vanish during the run itself; the next run redoes their sources.
        logger.warning("%d crop file(s) vanished during the run; re-run to recreate them", len(missing))
    manifest.write_manifest(data_dir, rows)
    manifest.remove_orphans(data_dir, rows, files)
    rejects_page.build(data_dir, rows, config.thresholds)
    return rows


def summary_counts(
    rows: list[dict[str, Any]],
    sources: Sources,
    todo: list[worker.Job],
    redecided: list,
    timing: dict[str, float],
) -> dict[str, Any]:
    detections = [row for row in rows if row.get("crop_box") is not None]
    rejected = collections.Counter(row["reason"] for row in rows if row["decision"] == "rejected")
    counts = {
        "images in raw manifest": len(sources.jobs),
        "images processed now": len(todo),
        "images unchanged (skipped)": len(sources.jobs) - len(todo),
        "images re-decided (thresholds)": len(redecided),
        "raw rows without sha256 (skipped)": len(sources.skipped),
        "faces": len(detections),
        "accepted": sum(1 for row in rows if row["decision"] == "accepted"),
        "rejected": sum(rejected.values()),
        "rejected by reason": dict(sorted(rejected.items())) or {"(none)": 0},
        "overrides applied": sum(1 for row in rows if row.get("override")),
        "cpu seconds by phase": {k: round(v, 2) for k, v in timing.items()} or {"(nothing processed)": 0},
    }
    kinds = collections.Counter(
        row["align"]["fallback"] or "aligned" for row in detections if row.get("align")
    )
    if kinds:  # align = "eyes": how many faces were aligned, and why the others kept the box crop
        counts["eye alignment"] = {
            "aligned": kinds.pop("aligned", 0),
            **{f"box crop ({why})": n for why, n in sorted(kinds.items())},
        }
    return counts
