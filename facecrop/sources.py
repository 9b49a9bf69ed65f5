"""Reading the crawler's `raw/manifest.jsonl` into jobs, tolerating what a crawl can leave behind.

Rows without a sha256 cannot get a stable crop id and are reported, never guessed at; a row
whose path is missing, absolute or escapes DATA still becomes a job, so the worker records
a `decode_error` for it instead of it disappearing. The row format is `pipeline.manifests.RawImage`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from facecrop.worker import Job
from pipeline import atomic
from pipeline.errors import InputMissing
from pipeline.layout import Layout
from pipeline.manifests import RawImage, RowError


@dataclasses.dataclass
class Sources:
    jobs: list[Job]
    skipped: list[str]  # one human-readable line per raw row that could not become a job


def require_raw_manifest(data_dir: Path) -> Path:
    """The crawler's manifest, or InputMissing naming the stage that writes it."""
    manifest = Layout(data_dir).raw_manifest
    if not manifest.is_file():
        raise InputMissing(
            f"no raw manifest at {manifest}: run the crawler first (`make crawl`, or `make dataset`)"
        )
    return manifest


def read_sources(data_dir: Path) -> Sources:
    """One job per distinct sha256 (a repeated sha256 is covered by the crawler's provenance list)."""
    manifest = require_raw_manifest(data_dir)
    jobs: list[Job] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(atomic.read_jsonl(manifest), start=1):
        try:
            image = RawImage.parse(row)
        except RowError as exc:
            skipped.append(f"{manifest}: row {number}: {exc}; cannot name its crops")
            continue
        if image.sha256 in seen:
            continue
        seen.add(image.sha256)
        jobs.append(Job(sha256=image.sha256, path=image.path, source=image.source))
    return Sources(jobs, skipped)
