"""`python -m dedup --config FILE --data DIR`."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import add_common_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dedup", description="Remove exact and near-duplicate faces; write 64x64 PNGs and the training shard.")
    add_common_arguments(parser)
    parser.parse_args(argv)
    print("dedup: this stage is not implemented yet (issue #5); nothing was done", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
