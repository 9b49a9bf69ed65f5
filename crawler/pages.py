"""Listing and detail pages, fetched once and remembered as what the site extracted from them.

A site parses each page into plain JSON (product ids, post records, next cursor); that
result, not the HTML, is kept in SQLite. A resumed crawl therefore replays its listing
in the same order without asking the site again, and `--refresh` re-fetches only the
pages marked volatile (month listings, first API pages) to find new items.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from crawler.credentials import redact
from crawler.fetcher import Fetched, Fetcher, FetchError
from crawler.origins import AllowedOrigins
from crawler.state import State

MAX_SHOWN = 3  # failed pages named on stderr; the rest are only counted (no network = every page)


class PageRejected(ValueError):
    """A parser's verdict that a page answered but is not what was asked for (an age-check page,
    a listing whose markup yields nothing). Never cached, so the next run asks again."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = redact(detail)  # a parser may quote the body, and a body may echo a key
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceStopped(Exception):
    """The rest of this source cannot be crawled this run (robots.txt forbids its pages, or its
    markup changed); the engine ends the source with this one line and goes on to the next."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PageCache:
    def __init__(
        self,
        state: State,
        fetcher: Fetcher,
        source_key: str,
        refresh: bool,
        counts: Counter,
        obey_robots: bool = True,
        source_name: str = "",
    ) -> None:
        self.state = state
        self.obey_robots = obey_robots
        self.source_name = source_name or source_key
        self.fetcher = fetcher
        self.source_key = source_key
        self.refresh = refresh
        self.counts = counts
        self._refreshed: set[str] = set()
        # What this source's pages came back as, for the one "answered but unreadable" rule.
        self.read = 0  # pages parsed (from the site or the cache)
        self.unanswered = 0  # pages the site did not answer usably (network, HTTP status, size)
        self.unreadable: list[tuple[str, str, str]] = []  # (url, reason, detail): answered, not parseable

    def get(
        self,
        url: str,
        parse: Callable[[Fetched], Any],
        allowed: AllowedOrigins,
        *,
        volatile: bool = False,
        headers: dict[str, str] | None = None,
        post_json: dict | None = None,
        secret_params: dict[str, str] | None = None,
    ) -> Any | None:
        """The parsed page, from the cache or the site; None when it cannot be had this run.

        A page robots.txt disallows stops the whole source (SourceStopped): its next pages
        would be disallowed too, and asking for each of them would only repeat the answer.
        The page is cached under `url`, which never holds `secret_params` (an API key is sent,
        not kept).
        """
        key = url
        if post_json is not None:
            key += "#" + hashlib.sha1(json.dumps(post_json, sort_keys=True).encode()).hexdigest()
        if not (volatile and self.refresh) or key in self._refreshed:
            cached = self.state.page_result(key)
            if cached is not None:
                self.counts["pages_cached"] += 1
                self.read += 1
                return cached
        try:
            if post_json is None:
                fetched = self.fetcher.get(
                    url, allowed, headers=headers, obey_robots=self.obey_robots, secret_params=secret_params
                )
            else:
                fetched = self.fetcher.post_json(
                    url, post_json, allowed, headers=headers, obey_robots=self.obey_robots
                )
            result = parse(fetched)
        except FetchError as exc:
            if exc.reason == "robots_disallowed":
                self.counts["pages_failed:robots_disallowed"] += 1
                raise SourceStopped(
                    "robots_disallowed",
                    f"robots.txt disallows {url} ({self.fetcher.robots.rule_for(url)}); this source is skipped. If the site's terms "
                    f"allow API clients, set obey_robots = false in this [[sources]] table (docs/crawler.md, robots.txt).",
                ) from exc
            self.unanswered += 1
            self._failed(url, exc.reason, exc.detail)
            return None
        except PageRejected as exc:
            self._unreadable(url, exc.reason, exc.detail)
            return None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            self._unreadable(url, "unparseable", f"{exc.__class__.__name__}: {exc}")
            return None
        self.state.save_page(key, self.source_key, url, result, utc_now())
        self._refreshed.add(key)
        self.counts["pages_fetched"] += 1
        self.read += 1
        return result

    def _unreadable(self, url: str, reason: str, detail: str) -> None:
        detail = redact(detail)
        self.unreadable.append((url, reason, detail))
        self._failed(url, reason, detail)

    def check_read(self, kind: str, hint: str) -> None:
        """One rule for every site: when every page this source asked for answered, and not one could
        be read as that site's listing (its markup or API shape), the source stops as `site_changed`
        (exit 6), naming what came back. A page the network or an HTTP status took away is not
        evidence that the site changed, so any such page, or any page read, keeps the rule quiet."""
        if self.read or self.unanswered or not self.unreadable:
            return
        url, reason, detail = self.unreadable[0]
        raise SourceStopped(
            "site_changed",
            f"all {len(self.unreadable)} listing page(s) answered but none could be read as a {kind} "
            f"listing (first: {url}: {reason}: {detail[:160]}); {hint}",
        )

    def _failed(self, url: str, reason: str, detail: str) -> None:
        self.counts[f"pages_failed:{reason}"] += 1
        self.counts["pages_failed_shown"] += 1
        if self.counts["pages_failed_shown"] > MAX_SHOWN:
            if self.counts["pages_failed_shown"] == MAX_SHOWN + 1:
                tqdm.write("crawler: more pages failed; the summary counts them by reason", file=sys.stderr)
            return
        tqdm.write(
            f"crawler: page {url} failed ({reason}: {detail[:200]}); retried on the next run", file=sys.stderr
        )
