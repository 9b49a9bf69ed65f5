"""The config files (dataset.toml) a test writes: a [facecrop] section, a crawl of one folder, and
the crawler's settings made fast for a local server. The trainer's is tests/helpers/train.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_facecrop_config(path: Path, text: str = "") -> Path:
    """A config file with a [facecrop] section holding `text`."""
    path.write_text("[facecrop]\n" + text, encoding="utf-8")
    return path


def write_folder_config(path: Path, art: Path, extra: str = "", workers: int = 1) -> Path:
    """A dataset.toml crawling the folder `art` (no rate limit), `workers` for facecrop and dedup, then `extra`."""
    path.write_text(
        f'[crawler]\nrate_per_host = 0\n[[sources]]\nkind = "folder"\npath = "{art}"\n'
        f"[facecrop]\nworkers = {workers}\n[dedup]\nworkers = {workers}\n{extra}",
        encoding="utf-8",
    )
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


FAST_CRAWLER = {
    "user_agent": "anime-face-pipeline-tests/0.1 (+tests@example.invalid)",
    "rate_per_host": 0,
    "backoff": 0.05,
    "retries": 3,
    "connect_timeout": 5,
    "read_timeout": 5,
}


def write_crawler_config(
    path: Path, sources: list[dict[str, Any]], crawler: dict[str, Any] | None = None
) -> Path:
    """A dataset.toml at `path`: [crawler] with FAST_CRAWLER and `crawler` over it, then each [[sources]]."""
    lines = ["[crawler]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in {**FAST_CRAWLER, **(crawler or {})}.items()]
    for source in sources:
        lines.append("\n[[sources]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in source.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
