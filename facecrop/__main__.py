"""`python -m facecrop --config FILE --data DIR`."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import add_common_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facecrop", description="Detect anime faces in DATA/raw/, write accepted crops and inspectable rejects.")
    add_common_arguments(parser)
    parser.parse_args(argv)
    print("facecrop: this stage is not implemented yet (issue #7); nothing was done", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
