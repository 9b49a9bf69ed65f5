"""The command-line shape every stage shares: `python -m STAGE --config FILE --data DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "dataset.toml"
DEFAULT_DATA = "data"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=Path(DEFAULT_CONFIG), help=f"TOML config file (default: {DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--data", type=Path, default=Path(DEFAULT_DATA), help=f"data directory all stages share (default: {DEFAULT_DATA})"
    )
