"""The command-line shape every stage shares: `python -m STAGE --config FILE --data DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "dataset.toml"
DEFAULT_DATA = "data"


def add_common_arguments(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """--config and --data. `defaults=False` is for a subcommand's copy of them: given after the
    subcommand they win, left out they keep what was given before it (or the top-level default)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(DEFAULT_CONFIG) if defaults else argparse.SUPPRESS,
        help=f"TOML config file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(DEFAULT_DATA) if defaults else argparse.SUPPRESS,
        help=f"data directory all stages share (default: {DEFAULT_DATA})",
    )
