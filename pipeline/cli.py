"""The command-line shape every stage shares: `python -m STAGE --config FILE --data DIR`.

Every stage and every subcommand takes its switches from `add_stage_options`, so `-q`,
`--no-progress` or `--data` mean the same everywhere and may be given before or after a
subcommand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "dataset.toml"
DEFAULT_DATA = "data"


def add_stage_options(
    parser: argparse.ArgumentParser, *, subcommand: bool = False, wait: bool = True
) -> None:
    """--config, --data, --no-progress, -q, -v and (with `wait`) --wait.

    A subcommand's copy has no defaults (argparse.SUPPRESS): given after the subcommand they win,
    left out they keep what was given before it, or the top-level default. Without this a
    subcommand's default would silently overwrite `-q` typed before it.
    """
    unset = argparse.SUPPRESS if subcommand else None
    parser.add_argument(
        "--config",
        type=Path,
        default=unset or Path(DEFAULT_CONFIG),
        help=f"TOML config file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=unset or Path(DEFAULT_DATA),
        help=f"data directory all stages share (default: {DEFAULT_DATA})",
    )
    switch = unset or False
    parser.add_argument(
        "--no-progress",
        action="store_true",
        default=switch,
        help="no progress bars (the summary is still printed)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=switch, help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", default=switch, help="also debug messages")
    if wait:
        parser.add_argument(
            "--wait",
            action="store_true",
            default=switch,
            help="if another run is working in DATA, wait for it to finish (default: exit 7 at once)",
        )
