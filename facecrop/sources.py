"""Reading the crawler's `raw/manifest.jsonl` into jobs, tolerating what a crawl can leave behind.

Rows without a sha256 cannot get a stable crop id and are reported, never guessed at; a row
whose path is missing, absolute or escapes DATA still becomes a job, so the worker records
a `decode_error` for it instead of it disappearing.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path, PurePosixPath
from typing import Any

from facecrop.worker import Job
from pipeline import atomic

SHA256 = re.compile(r"^[0-9a-f]{64}$")
COPIED_FIELDS = ("site", "url", "page_url", "meta")


class SourcesError(RuntimeError):
    """The raw manifest is absent; the message says which stage makes it."""


@dataclasses.dataclass
class Sources:
    jobs: list[Job]
    skipped: list[str]  # one human-readable line per raw row that could not become a job
    duplicates: int  # rows repeating a sha256 already seen (the crawler's provenance list covers them)


def raw_manifest_path(data_dir: Path) -> Path:
    return data_dir / "raw" / "manifest.jsonl"


def safe_relative(path: Any) -> str | None:
    """The path if it stays inside DATA, else None."""
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    return pure.as_posix()


def read_sources(data_dir: Path) -> Sources:
    manifest = raw_manifest_path(data_dir)
    if not manifest.is_file():
        raise SourcesError(f"no raw manifest at {manifest}: run the crawler first (make crawl)")
    jobs: list[Job] = []
    skipped: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for number, row in enumerate(atomic.read_jsonl(manifest), start=1):
        sha = row.get("sha256") if isinstance(row, dict) else None
        if not isinstance(sha, str) or not SHA256.match(sha.lower()):
            skipped.append(f"{manifest}: row {number}: no valid sha256 ({sha!r}); cannot name its crops")
            continue
        sha = sha.lower()
        if sha in seen:
            duplicates += 1
            continue
        seen.add(sha)
        source = {key: row.get(key) for key in COPIED_FIELDS}
        if not isinstance(source["meta"], dict):
            source["meta"] = {}
        rel = safe_relative(row.get("path"))
        jobs.append(Job(sha256=sha, path=rel if rel is not None else "", source=source))
    return Sources(jobs, skipped, duplicates)
