"""The closing summary every long job prints: one screen, counts only."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO


def format_summary(title: str, counts: Mapping[str, object]) -> str:
    width = max((len(str(k)) for k in counts), default=0)
    lines = [f"== {title} =="]
    for key, value in counts.items():
        if isinstance(value, Mapping):
            lines.append(f"  {key}:")
            inner = max((len(str(k)) for k in value), default=0)
            lines.extend(f"    {str(k).ljust(inner)}  {v}" for k, v in value.items())
        else:
            lines.append(f"  {str(key).ljust(width)}  {value}")
    return "\n".join(lines)


def print_summary(title: str, counts: Mapping[str, object], stream: TextIO | None = None) -> None:
    print(format_summary(title, counts), file=stream or sys.stderr, flush=True)
