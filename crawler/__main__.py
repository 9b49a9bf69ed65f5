"""`python -m crawler --config FILE --data DIR [--refresh] [--retry-failed]`."""

from __future__ import annotations

import argparse
import os
import sys

from crawler import config as crawler_config
from crawler.engine import CrawlReport, SourceUnusable, crawl, stragglers
from crawler.state import State
from crawler.store import check_store
from pipeline.cli import add_stage_options
from pipeline.config import read_config
from pipeline.errors import ConfigError, Interrupted, SiteChanged, SiteUnreachable
from pipeline.layout import Layout
from pipeline.runner import (
    configure_logging,
    run_stage,
    show_progress,
)
from pipeline.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler",
        description="Crawl the configured [[sources]] into DATA/raw/ (content-addressed, with provenance), "
        "politely and resumably. Re-running finishes an interrupted crawl without fetching anything twice.",
    )
    add_stage_options(parser)
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="re-list the sources' listing pages to find new items (default: reuse)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="also retry URLs that failed for a permanent reason (404, not an image, too large, ...); "
        "transient failures (connection, 429, 5xx) are always retried",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every stored image against its sha256 (a plain run checks sizes) and fetch damaged ones again",
    )
    args = parser.parse_args(argv)
    configure_logging(args, "crawler")
    code = run_stage(
        "crawler",
        lambda: run(args),
        interrupted="interrupted; the manifest is up to date, re-run to finish",
        data=args.data,
        wait=args.wait,
    )
    if code == Interrupted.exit_code and stragglers():
        # A download thread still inside a TCP connect would hold the interpreter's exit until
        # connect_timeout. Everything is saved and the lock is the kernel's to release: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def run(args: argparse.Namespace) -> int:
    settings = crawler_config.load(read_config(args.config))
    if Layout(args.data).crawl_state.is_file():
        state = State(Layout(args.data).crawl_state)
        try:
            # damaged images become pending: this crawl refetches
            check_store(state, args.data, verify=args.verify)
        finally:
            state.close()
    try:
        report = crawl(
            settings,
            args.data,
            refresh=args.refresh,
            retry_failed=args.retry_failed,
            progress=show_progress(args),
        )
    except SourceUnusable as exc:
        raise ConfigError(str(exc)) from exc
    print_summary("crawler", summary_counts(report))
    if report.unreachable:
        raise SiteUnreachable(
            f"no site could be reached ({report.requests} requests, none answered; first error "
            f"{report.first_error[:160] or 'unknown'}). No network? Check your connection, proxy and each "
            "source's base_url, or crawl local files with a folder/urls source."
        )
    changed = [
        (index, kind, text) for index, kind, reason, text in report.stopped if reason == "site_changed"
    ]
    if changed:
        index, kind, text = changed[0]
        more = f" ({len(changed) - 1} more source(s) likewise, above)" if len(changed) > 1 else ""
        raise SiteChanged(f"source #{index} ({kind}) answered but could not be read: {text}{more}")
    if report.stopped and len(report.stopped) == len(settings.sources):
        raise SiteChanged("every source stopped (details above); nothing could be crawled")
    return 0


def summary_counts(report: CrawlReport) -> dict[str, object]:
    counts = report.counts
    page_failures = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("pages_failed:") and v}
    earlier = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("failed_earlier:") and v}
    skipped_robots = report.failed.get("robots_disallowed", 0)
    failed = {k: v for k, v in sorted(report.failed.items()) if k != "robots_disallowed"}
    site_counts = {
        k: v
        for k, v in counts.items()
        if ":" in k and not k.startswith(("pages_failed:", "failed_earlier:")) and v
    }
    summary: dict[str, object] = {
        "pages fetched": counts["pages_fetched"],
        "pages reused from state": counts["pages_cached"],
        "image URLs listed": counts["listed"],
        "images stored (new)": counts["stored"],
        "duplicates (bytes or URL already stored)": counts["duplicates"],
        "already stored by an earlier run": counts["already_stored"],
        "known_md5 (stored picture, not fetched)": counts["known_md5"],
        "skipped by robots.txt": skipped_robots,
        "listings unparsed (markup changed?)": counts["pages_failed:listing_unparsed"],
        "failed this run": sum(failed.values()),
        "requests": report.requests,
        "retries": counts["retries"],
        "images in store": report.images_in_store,
        "manifest rows": report.manifest_rows,
    }
    if failed:
        summary["failed by reason (retried next run if transient)"] = failed
    if earlier:
        summary["failed earlier, not retried (use --retry-failed)"] = earlier
    if page_failures:
        summary["pages failed by reason (retried next run)"] = page_failures
    if site_counts:
        summary["site skips"] = site_counts
    if report.stopped:
        summary["sources stopped"] = {f"#{index} {kind}": reason for index, kind, reason, _ in report.stopped}
    if counts["stale_temp_files_removed"]:
        summary["stale temp files removed"] = counts["stale_temp_files_removed"]
    return summary


if __name__ == "__main__":
    sys.exit(main())
