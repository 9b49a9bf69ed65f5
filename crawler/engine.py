"""One crawl: every configured source in turn, its listing feeding a pool of download threads.

The listing runs in the calling thread (its pages are few and cached); image downloads
run in `workers` threads, paced per host by the shared rate limiter, so different
hosts are fetched concurrently while no host sees more than its rate. Each finished
download is committed to SQLite at once; the manifest is rewritten from SQLite at
checkpoints and at the end, whatever happens. SIGTERM and Ctrl-C set the crawl's one stop,
which ends every wait and request in flight, so the workers finish within moments and the
manifest of what was stored so far is written before the process exits 130.

A post whose published md5 names a picture already in the store (from any source, this run or
an earlier one) is not fetched: its item is linked to the stored file in one commit, so the
manifest gives that file one provenance row per site that lists it (`known_md5`).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from crawler import store
from crawler.config import CrawlerConfig, Settings, source_key
from crawler.deadline import CrawlStop
from crawler.fetcher import RECHECKED_REASONS, TRANSIENT_REASONS, Fetcher, FetchError
from crawler.imagecheck import ImageRejected, check_image
from crawler.manifest import write_manifest
from crawler.pages import PageCache, SourceStopped, utc_now
from crawler.ratelimit import HostRateLimiter
from crawler.robots import ai_opt_out
from crawler.sites import SITES
from crawler.sites.base import Item, Site, obeys_robots
from crawler.state import State
from pipeline import atomic
from pipeline.layout import Layout

# After a stop, how long the crawl waits for a download thread stuck in a TCP connect (seconds).
STOP_GRACE = 2.0


class SourceUnusable(RuntimeError):
    """A source that cannot work at all (a missing folder or URL list); the message names it."""


@dataclass
class CrawlReport:
    counts: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)  # this run's failures by reason
    requests: int = 0
    responses: int = 0
    images_in_store: int = 0
    manifest_rows: int = 0
    first_error: str = ""
    stopped: list[tuple[int, str, str, str]] = field(default_factory=list)  # (index, kind, reason, message)

    @property
    def unreachable(self) -> bool:
        """Web requests were made, none was answered, and nothing was had any other way."""
        got = sum(self.counts[k] for k in ("stored", "duplicates", "already_stored", "known_md5"))
        return self.requests > 0 and self.responses == 0 and got == 0


def effective_rate(source_rate: float | None, site_rate: float | None, rate_per_host: float) -> float:
    if source_rate is not None:
        return source_rate
    positive = [r for r in (site_rate, rate_per_host) if r]
    return min(positive) if positive else 0.0


def crawl(
    settings: Settings,
    data_dir: Path,
    *,
    refresh: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
) -> CrawlReport:
    """Crawl every source; the manifest is written however the crawl ends.

    SIGTERM and Ctrl-C stop it: the one `CrawlStop` is set, every wait and request in flight
    ends at once, the manifest is written, and KeyboardInterrupt goes on to the caller (exit 130).
    """
    stop = CrawlStop()
    with stop.on_signals():
        return _crawl(settings, Path(data_dir), stop, refresh, retry_failed, progress)


def _crawl(
    settings: Settings, data_dir: Path, stop: CrawlStop, refresh: bool, retry_failed: bool, progress: bool
) -> CrawlReport:
    config = settings.crawler
    layout = Layout(data_dir)
    layout.raw_dir.mkdir(parents=True, exist_ok=True)
    report = CrawlReport()
    report.counts["stale_temp_files_removed"] = atomic.remove_stale_temps(layout.raw_dir)
    limiter = HostRateLimiter(config.rate_per_host, stop)
    fetcher = Fetcher(config, limiter)
    state = State(layout.crawl_state)
    order = [source_key(source) for source in settings.sources]
    try:
        store.backfill_md5(state, data_dir)
        sites = _open_sites(settings, state, fetcher, limiter, refresh, report)
        checkpoint = _Checkpoint(state, data_dir, order, config.checkpoint_seconds)
        for index, site in sites:
            try:
                _crawl_source(
                    index, site, state, data_dir, config, report, checkpoint, retry_failed, progress
                )
            except SourceStopped as stopped:
                tqdm.write(f"crawler: source #{index} ({site.kind}) stopped: {stopped}", file=sys.stderr)
                report.stopped.append((index, site.kind, stopped.reason, str(stopped)))
                if stopped.reason == "robots_disallowed":
                    report.failed["robots_disallowed"] += 1
            report.counts.update({f"{site.kind}:{k}": v for k, v in site.counts.items()})
    except BaseException:
        stop.set()  # whatever ends the crawl early ends every wait and request with it
        raise
    finally:
        with stop.deferring_signals():  # a signal now would cut short the manifest it asks for
            _finish(report, state, fetcher, data_dir, order)
    return report


def _open_sites(
    settings: Settings,
    state: State,
    fetcher: Fetcher,
    limiter: HostRateLimiter,
    refresh: bool,
    report: CrawlReport,
) -> list[tuple[int, Site]]:
    """Each source's site, checked (a missing folder is a config error) and its hosts' rates set."""
    config = settings.crawler
    sites = []
    for index, source in enumerate(settings.sources, start=1):
        site_cls = SITES[source.kind]
        pages = PageCache(
            state,
            fetcher,
            source_key(source),
            refresh,
            report.counts,
            obey_robots=obeys_robots(source, config.obey_robots),
            source_name=f"#{index} {source.kind}",
        )
        site = site_cls(source, fetcher, pages, settings.credentials.get(source.kind))
        try:
            site.check()
        except (OSError, ValueError) as exc:
            raise SourceUnusable(f"[[sources]] #{index} (kind = {source.kind!r}): {exc}") from exc
        rate = effective_rate(source.rate, site_cls.default_rate, config.rate_per_host)
        for host in site.hosts() | set(config.cdn_hosts):
            limiter.set_rate(host, rate)
        sites.append((index, site))
    return sites


def _finish(report: CrawlReport, state: State, fetcher: Fetcher, data_dir: Path, order: list[str]) -> None:
    """The manifest from what is stored so far, and the fetcher's counts into the report."""
    try:
        report.manifest_rows = write_manifest(state, data_dir, order)
        report.images_in_store = state.count_images()
    finally:
        state.close()
    report.requests = fetcher.counts["requests"]
    report.responses = fetcher.counts["responses"]
    report.first_error = report.first_error or fetcher.first_failure
    report.counts["retries"] = fetcher.counts["retries"]
    report.counts["robots_files_fetched"] = fetcher.robots.fetched


class _Checkpoint:
    """Rewrite the manifest every so often, so a long crawl's progress is visible downstream."""

    def __init__(self, state: State, data_dir: Path, order: list[str], seconds: float) -> None:
        self.state, self.data_dir, self.order, self.seconds = state, data_dir, order, seconds
        self.last = time.monotonic()

    def maybe(self) -> None:
        if time.monotonic() - self.last >= self.seconds:
            write_manifest(self.state, self.data_dir, self.order)
            self.last = time.monotonic()


def _crawl_source(
    index: int,
    site: Site,
    state: State,
    data_dir: Path,
    config: CrawlerConfig,
    report: CrawlReport,
    checkpoint: _Checkpoint,
    retry_failed: bool,
    progress: bool,
) -> None:
    key = source_key(site.source)
    cap = site.source.max_images
    bar = tqdm(
        total=cap or None,
        desc=f"#{index} {site.kind}",
        unit="img",
        file=sys.stderr,
        disable=not progress,
        leave=True,
    )
    seen: set[str] = set()
    pending: set[Future] = set()
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix=f"crawl-{site.kind}")
    try:
        for item in site.listing():
            if item.url in seen:
                continue
            seen.add(item.url)
            status, reason = state.add_item(
                key, item.url, len(seen), site.kind, item.page_url, item.meta, item.post_md5
            )
            known = _known_outcome(status, reason, retry_failed)
            if known:
                report.counts[known] += 1
                bar.update()
            else:
                pending.add(pool.submit(_download, site, key, item, state, data_dir, config))
            while len(pending) >= config.workers * 2:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, report, bar, checkpoint)
            if cap and len(seen) >= cap:
                break
        bar.total = len(seen)  # the listing may hold fewer than max_images
        bar.refresh()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            _collect(done, report, bar, checkpoint)
    except BaseException:
        # Before the shutdown below waits for the workers: a stop wakes their backoffs and cuts
        # their reads, so that wait lasts moments, not until every retry has run its course.
        site.fetcher.stop.set()
        raise
    finally:
        stopping = site.fetcher.stop.is_set()
        pool.shutdown(wait=not stopping, cancel_futures=True)
        if stopping:
            join_workers(f"crawl-{site.kind}", STOP_GRACE)
        bar.close()
    report.counts["listed"] += len(seen)


def join_workers(prefix: str, seconds: float) -> None:
    """Wait up to `seconds` for this source's download threads after a stop. A stop cuts every read,
    but a TCP connect still in progress cannot be cut and would run to `connect_timeout`; such a
    thread holds nothing the manifest needs (its URL stays pending), so the crawl does not wait for
    it, and the CLI ends the process without it (`stragglers`)."""
    deadline = time.monotonic() + seconds
    for thread in stragglers(prefix):
        thread.join(max(0.0, deadline - time.monotonic()))


def stragglers(prefix: str = "crawl-") -> list[threading.Thread]:
    """Download threads still alive (after a stop: blocked in a connect)."""
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _known_outcome(status: str, reason: str | None, retry_failed: bool) -> str | None:
    """The count for an item this run does not download (stored, or failed for good by an earlier
    run); None for one to download."""
    if status == "stored":
        return "already_stored"
    if status == "failed" and reason not in TRANSIENT_REASONS | RECHECKED_REASONS and not retry_failed:
        return f"failed_earlier:{reason}"
    return None


def _collect(done: set[Future], report: CrawlReport, bar: tqdm, checkpoint: _Checkpoint) -> None:
    """Count finished downloads; rewrite the manifest when a checkpoint is due."""
    for future in done:
        outcome, reason, detail = future.result()
        if outcome == "failed":
            report.failed[reason] += 1
            if not report.first_error:
                report.first_error = f"{reason}: {detail}"
        else:
            report.counts[outcome] += 1
        bar.update()
    checkpoint.maybe()


def _download(
    site: Site, key: str, item: Item, state: State, data_dir: Path, config: CrawlerConfig
) -> tuple[str, str, str]:
    """Fetch, check and store one image; returns (outcome, reason, detail). Never raises for bad input."""
    known = state.stored_sha_for_url(item.url)
    if known is not None:  # another source already fetched exactly this URL
        state.record_stored(key, item.url, known, utc_now())
        return "duplicates", "", ""
    known = state.stored_sha_for_md5(item.post_md5) if item.post_md5 else None
    if known is not None:  # the site says this is a picture already stored: link it, fetch nothing
        state.record_stored(key, item.url, known, utc_now())
        return "known_md5", "", ""
    try:
        data = _fetch_checked(site, item, config)
        info = check_image(data, config.max_pixels)
    except (FetchError, ImageRejected) as exc:
        state.record_failed(key, item.url, exc.reason, exc.detail)
        return "failed", exc.reason, exc.detail
    sha256 = store.sha256_hex(data)
    path = store.put(data_dir, sha256, info.extension, data)
    image = {
        "md5": store.md5_hex(data),
        "path": path,
        "bytes": len(data),
        "width": info.width,
        "height": info.height,
        "format": info.format,
    }
    new = state.record_stored(key, item.url, sha256, utc_now(), image=image)
    return ("stored" if new else "duplicates"), "", ""


MD5_TRIES = 2  # a mismatch is fetched once more (a CDN may serve a stale or cut copy), then final


def _fetch_checked(site: Site, item: Item, config: CrawlerConfig) -> bytes:
    """The image's bytes, once the site's opt-out and its published md5 allow keeping them."""
    for _ in range(MD5_TRIES):
        fetched = site.download(item, config.max_bytes)
        if ai_opt_out(fetched.headers.get("X-Robots-Tag"), config.user_agent):
            raise ImageRejected(
                "opted_out", f"{item.url}: X-Robots-Tag {fetched.headers.get('X-Robots-Tag')!r}"
            )
        if not item.md5 or hashlib.md5(fetched.body).hexdigest() == item.md5.lower():
            return fetched.body
    raise ImageRejected(
        "md5_mismatch", f"{item.url}: bytes do not match md5 {item.md5} ({MD5_TRIES} downloads)"
    )
