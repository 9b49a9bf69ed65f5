"""`python -m crawler --config FILE --data DIR`."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import add_common_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler", description="Crawl the configured [[sources]] into DATA/raw/ (content-addressed, with provenance).")
    add_common_arguments(parser)
    parser.parse_args(argv)
    print("crawler: this stage is not implemented yet (issue #2); nothing was done", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
