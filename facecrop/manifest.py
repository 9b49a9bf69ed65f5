"""`crops/manifest.jsonl`: the rows downstream stages read, always in step with files on disk.

Rebuilt whole from the stored automatic rows plus the overrides log, in raw-manifest order,
so a killed-and-resumed run writes the same bytes as one clean run. Before writing, every
crop file is put where its row says (a promote or demote interrupted between its log append
and its file move is finished here) and crop files no row points at are removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from facecrop import overrides
from pipeline import atomic
from pipeline.decisions import Decision
from pipeline.layout import Layout


def read_manifest(data_dir: Path) -> list[dict[str, Any]]:
    return atomic.read_jsonl(Layout(data_dir).crops_manifest)


def write_manifest(data_dir: Path, rows: Iterable[dict[str, Any]]) -> int:
    return atomic.write_jsonl(Layout(data_dir).crops_manifest, rows)


def crop_files(data_dir: Path) -> dict[str, list[str]]:
    """Every crop PNG on disk by id: crops/<id>.png and rejects/<reason>/<id>.png (paths relative to DATA)."""
    layout = Layout(data_dir)
    found: dict[str, list[str]] = {}
    places = [(layout.crops_dir.name, layout.crops_dir)]
    rejects = layout.rejects_dir
    if rejects.is_dir():
        places += [(f"{rejects.name}/{d.name}", d) for d in sorted(rejects.iterdir()) if d.is_dir()]
    for rel, directory in places:
        if not directory.is_dir():
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".png") and not entry.name.startswith(".") and entry.is_file():
                    found.setdefault(entry.name[:-4], []).append(f"{rel}/{entry.name}")
    return found


def final_rows(stored: Iterable[dict[str, Any]], override_rows: dict[str, Decision]) -> list[dict[str, Any]]:
    """The published rows: the one place a person's overrides are applied."""
    return [overrides.apply(row, override_rows.get(row["id"])) for row in stored]


def place_files(data_dir: Path, rows: list[dict[str, Any]], files: dict[str, list[str]]) -> list[str]:
    """Move each crop to its row's path if it sits elsewhere; returns ids with no file anywhere."""
    missing = []
    for row in rows:
        target = row.get("path")
        if not target:
            continue
        here = files.get(row["id"], [])
        if target in here:
            continue
        if not here:
            missing.append(row["id"])
            continue
        (data_dir / target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(data_dir / here[0], data_dir / target)
        files[row["id"]] = [target] + here[1:]
    return missing


def remove_orphans(data_dir: Path, rows: list[dict[str, Any]], files: dict[str, list[str]]) -> int:
    """Delete crop files no row points at (stale settings, duplicates left by a moved decision)."""
    wanted = {row["path"] for row in rows if row.get("path")}
    removed = 0
    for paths in files.values():
        for rel in paths:
            if rel not in wanted and (data_dir / rel).exists():
                (data_dir / rel).unlink()
                removed += 1
    rejects = Layout(data_dir).rejects_dir
    if rejects.is_dir():
        for directory in rejects.iterdir():
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    return removed
