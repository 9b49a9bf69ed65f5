"""`python -m review --data DIR [--config FILE] [--host 127.0.0.1] [--port 0] [--scores FILE] [--runs-dir DIR]`.

Prints the URL (with this start's token) and serves until Ctrl-C or SIGTERM, which stop it
cleanly with exit 0: there is no unfinished work, every decision was appended as it was made.
Opens no browser by itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facecrop import config as facecrop_config
from facecrop.config import Thresholds
from pipeline.cli import add_stage_options
from pipeline.config import read_config
from pipeline.errors import ConfigError, InputMissing
from pipeline.layout import DEFAULT_RUNS_DIR, Layout
from pipeline.runner import configure_logging, run_stage
from review import security
from review.scores import HOW, ScoreSource
from review.server import make_server


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m review",
        description="A local web app to inspect and overrule crops and duplicate clusters by clicking.",
    )
    add_stage_options(parser, wait=False)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything else exposes DATA to your network)",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--scores",
        type=Path,
        metavar="FILE",
        help="the discriminator's scores.jsonl to rank accepted crops by (default: the newest "
        f"RUNS_DIR/*/scores.jsonl; `{HOW}` writes one)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=DEFAULT_RUNS_DIR,
        help=f"where training runs live, searched for scores without --scores (default: {DEFAULT_RUNS_DIR})",
    )
    return parser


def score_source(args: argparse.Namespace, log: logging.Logger) -> ScoreSource:
    """Only the command line names the scores file; a file named and not there is a typo, said at once."""
    if args.scores is not None and not args.scores.is_file():
        raise InputMissing(f"no scores file at {args.scores}: `{HOW}` writes one (or leave out --scores)")
    source = ScoreSource(args.scores, None if args.scores is not None else args.runs_dir)
    found = source.find()
    if found is None:
        log.info("no %s/*/scores.jsonl yet: `%s` makes one", args.runs_dir, HOW)
    else:
        log.info("discriminator scores from %s", found)
    return source


def review(args: argparse.Namespace, log: logging.Logger) -> int:
    layout = Layout(args.data)
    if not layout.crops_manifest.is_file():
        raise InputMissing(
            f"no crops manifest at {layout.crops_manifest}: run `make dataset` (or facecrop) first"
        )
    if args.config.exists():
        # The thresholds the rejects were decided by.
        thresholds = facecrop_config.load(read_config(args.config)).thresholds
    else:
        log.warning("no config at %s; showing the default thresholds", args.config)
        thresholds = Thresholds()
    scores = score_source(args, log)
    try:
        server, app, url = make_server(args.data, thresholds, args.host, args.port, scores=scores)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    if not security.is_loopback(args.host):
        log.warning("listening on %s: anyone who can reach it and has the URL can see DATA", args.host)
    try:  # from the URL line on, Ctrl-C is the way to stop, not an interruption
        print(f"review: {url}", flush=True)
        print("review: open that URL in your browser; Ctrl-C stops the app", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        with app.actions.lock:  # a batch being appended by a request thread finishes first
            pass
    print("review: stopped; every decision is in the logs, `make dataset` applies them", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = configure_logging(args, "review")
    return run_stage("review", lambda: review(args, log))


if __name__ == "__main__":
    sys.exit(main())
