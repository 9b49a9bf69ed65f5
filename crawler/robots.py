"""robots.txt, fetched once per origin per run and honoured for every URL (pages, images, redirects).

Parsing is the standard library's `urllib.robotparser`. Following RFC 9309: a 4xx
robots.txt (including the common 404) means everything is allowed; a 5xx or an
unreachable robots.txt means nothing is allowed for this run, and the URLs are retried
on the next run rather than fetched against the site's unknown wishes. A Crawl-delay
for our user agent lowers the host's rate limit when it is stricter than ours.
"""

from __future__ import annotations

import threading
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

ROBOTS_MAX_BYTES = 512_000


@dataclass
class RobotsVerdict:
    allowed: bool
    reason: str = ""  # why not: robots_disallowed, or the reason robots.txt could not be read


class RobotsCache:
    """`fetch(url) -> (status, body)` does the actual request (rate limited, no robots check)."""

    def __init__(
        self,
        user_agent: str,
        fetch: Callable[[str], tuple[int, bytes]],
        enabled: bool = True,
        on_crawl_delay: Callable[[str, float], None] | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._fetch = fetch
        self._enabled = enabled
        self._on_crawl_delay = on_crawl_delay
        self._parsers: dict[str, urllib.robotparser.RobotFileParser | RobotsVerdict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetched = 0

    def check(self, url: str) -> RobotsVerdict:
        if not self._enabled:
            return RobotsVerdict(True)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._guard:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin even when many threads ask at once
            if origin not in self._parsers:
                self._parsers[origin] = self._load(origin)
        rules = self._parsers[origin]
        if isinstance(rules, RobotsVerdict):
            return rules
        if rules.can_fetch(self._user_agent, url):
            return RobotsVerdict(True)
        return RobotsVerdict(False, "robots_disallowed")

    def _load(self, origin: str) -> urllib.robotparser.RobotFileParser | RobotsVerdict:
        from crawler.fetcher import FetchError

        self.fetched += 1
        try:
            status, body = self._fetch(origin + "/robots.txt")
        except FetchError as exc:
            if exc.reason.startswith("http_4") or exc.reason in ("offhost_redirect", "too_many_redirects"):
                return RobotsVerdict(True)
            if exc.reason in ("connection", "timeout"):
                return RobotsVerdict(False, exc.reason)
            return RobotsVerdict(False, "robots_unavailable")
        if 400 <= status < 500:
            return RobotsVerdict(True)
        if status >= 500:
            return RobotsVerdict(False, "robots_unavailable")
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(body.decode("utf-8", errors="replace").splitlines())
        delay = parser.crawl_delay(self._user_agent)
        if delay and self._on_crawl_delay is not None:
            self._on_crawl_delay(urlsplit(origin).hostname or "", float(delay))
        return parser
