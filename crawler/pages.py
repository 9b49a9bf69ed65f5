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

from crawler.fetcher import Fetched, Fetcher, FetchError
from crawler.state import State

MAX_SHOWN = 3  # failed pages named on stderr; the rest are only counted (no network = every page)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PageCache:
    def __init__(self, state: State, fetcher: Fetcher, source_key: str, refresh: bool, counts: Counter) -> None:
        self.state = state
        self.fetcher = fetcher
        self.source_key = source_key
        self.refresh = refresh
        self.counts = counts
        self._refreshed: set[str] = set()

    def get(
        self,
        url: str,
        parse: Callable[[Fetched], Any],
        allowed_hosts: set[str],
        *,
        volatile: bool = False,
        headers: dict[str, str] | None = None,
        post_json: dict | None = None,
    ) -> Any | None:
        """The parsed page, from the cache or the site; None when it cannot be had this run."""
        key = url
        if post_json is not None:
            key += "#" + hashlib.sha1(json.dumps(post_json, sort_keys=True).encode()).hexdigest()
        if not (volatile and self.refresh) or key in self._refreshed:
            cached = self.state.page_result(key)
            if cached is not None:
                self.counts["pages_cached"] += 1
                return cached
        try:
            if post_json is None:
                fetched = self.fetcher.get(url, allowed_hosts, headers=headers)
            else:
                fetched = self.fetcher.post_json(url, post_json, allowed_hosts, headers=headers)
            result = parse(fetched)
        except FetchError as exc:
            self._failed(url, exc.reason, exc.detail)
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self._failed(url, "unparseable", f"{exc.__class__.__name__}: {exc}")
            return None
        self.state.save_page(key, self.source_key, url, result, utc_now())
        self._refreshed.add(key)
        self.counts["pages_fetched"] += 1
        return result

    def _failed(self, url: str, reason: str, detail: str) -> None:
        self.counts[f"pages_failed:{reason}"] += 1
        self.counts["pages_failed_shown"] += 1
        if self.counts["pages_failed_shown"] > MAX_SHOWN:
            if self.counts["pages_failed_shown"] == MAX_SHOWN + 1:
                tqdm.write("crawler: more pages failed; the summary counts them by reason", file=sys.stderr)
            return
        tqdm.write(f"crawler: page {url} failed ({reason}: {detail[:200]}); retried on the next run", file=sys.stderr)
