"""robots.txt, fetched once per origin per run and honoured for every URL (pages, images, redirects).

Parsing is `protego`, an RFC 9309 parser: the longest matching rule wins, Allow beats
Disallow on a tie, `*` and `$` are patterns, and Crawl-delay may be fractional. The
standard library's `urllib.robotparser` applies the *first* matching rule instead, so
on Danbooru's real robots.txt (`Disallow: /` first, then `Allow: /posts`, `Allow: /data`)
it blocks everything. Following RFC 9309: a 4xx robots.txt (including the common 404)
means everything is allowed; a 5xx or an unreachable robots.txt means nothing is
allowed for this run, and the URLs are retried on the next run rather than fetched
against the site's unknown wishes. A Crawl-delay for our user agent lowers the host's
rate limit when it is stricter than ours.

`X-Robots-Tag: noai` / `noimageai` on an image response is the site's opt-out from
AI training sets; `ai_opt_out` reads it and the engine does not store such images.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB; the rest is dropped
AI_OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})
log = logging.getLogger("crawler")


@dataclass
class RobotsVerdict:
    allowed: bool
    reason: str = ""  # why not: robots_disallowed, or the reason robots.txt could not be read


@dataclass
class _Rules:
    robots_url: str
    parser: Protego
    disallows: list[str]  # every Disallow pattern in the file, to name the one that matched


class RobotsCache:
    """`fetch(url) -> (status, body)` does the actual request (rate limited, no robots check)."""

    def __init__(
        self,
        user_agent: str,
        fetch: Callable[[str], tuple[int, bytes]],
        on_crawl_delay: Callable[[str, float], None] | None = None,
        max_crawl_delay: float = float("inf"),
    ) -> None:
        self._user_agent = user_agent
        self._max_crawl_delay = max_crawl_delay
        self._fetch = fetch
        self._on_crawl_delay = on_crawl_delay
        self._rules: dict[str, _Rules | RobotsVerdict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetched = 0

    def check(self, url: str) -> RobotsVerdict:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._guard:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin even when many threads ask at once
            if origin not in self._rules:
                self._rules[origin] = self._load(origin)
        rules = self._rules[origin]
        if isinstance(rules, RobotsVerdict):
            return rules
        if rules.parser.can_fetch(url, self._user_agent):
            return RobotsVerdict(True)
        return RobotsVerdict(False, "robots_disallowed")

    def rule_for(self, url: str) -> str:
        """The longest Disallow pattern that blocks `url`, for the line a person reads: matched by
        protego itself, one rule at a time, so only when a message needs it (never per request)."""
        parts = urlsplit(url)
        rules = self._rules.get(f"{parts.scheme}://{parts.netloc}")
        if not isinstance(rules, _Rules):
            return "robots.txt"
        matching = [
            pattern
            for pattern in rules.disallows
            if not Protego.parse(f"User-agent: *\nDisallow: {pattern}\n").can_fetch(url, self._user_agent)
        ]
        pattern = max(matching, key=len, default="")
        return f"Disallow: {pattern} in {rules.robots_url}" if pattern else f"a rule in {rules.robots_url}"

    def _load(self, origin: str) -> _Rules | RobotsVerdict:
        from crawler.fetcher import FetchError

        self.fetched += 1
        robots_url = origin + "/robots.txt"
        try:
            status, body = self._fetch(robots_url)
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
        if len(body) >= ROBOTS_MAX_BYTES:  # cut at the limit: a half line could read as another rule
            body = body[: body.rfind(b"\n") + 1]
        text = body.decode("utf-8", errors="replace")
        parser = Protego.parse(text)
        delay = parser.crawl_delay(self._user_agent)
        if delay and delay > self._max_crawl_delay:
            log.warning(
                "%s asks for Crawl-delay: %g s, more than max_crawl_delay = %g s; the host is skipped this run",
                robots_url,
                delay,
                self._max_crawl_delay,
            )
            return RobotsVerdict(False, "crawl_delay_too_long")
        if delay and self._on_crawl_delay is not None:
            self._on_crawl_delay(urlsplit(origin).hostname or "", float(delay))
        return _Rules(robots_url, parser, _disallow_patterns(text))


def _disallow_patterns(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        field, _, value = line.split("#", 1)[0].partition(":")
        if field.strip().lower() == "disallow" and value.strip():
            patterns.append(value.strip())
    return patterns


# Directives that carry a value after a colon; any other `name:` prefix names a bot.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})


def ai_opt_out(x_robots_tag: str | None, user_agent: str) -> bool:
    """True when an X-Robots-Tag header says `noai` or `noimageai` for every bot or for ours.

    The header is a comma-separated list of directives; `otherbot: noindex, noai` scopes the
    directives after it to that bot until the next bot name, so it does not opt us out.
    """
    if not x_robots_tag:
        return False
    ours = user_agent.split("/", 1)[0].strip().lower()
    applies = True
    for part in x_robots_tag.split(","):
        name, sep, rest = part.partition(":")
        if sep and name.strip().lower() not in _VALUED_DIRECTIVES:
            applies = name.strip().lower() in (ours, "*")
            part = rest
        if applies and part.strip().lower() in AI_OPT_OUT_DIRECTIVES:
            return True
    return False
