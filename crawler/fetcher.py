"""Every HTTP request the crawler makes: polite, bounded and retried.

One place applies the rules: the per-host rate limit, robots.txt, an identifying
User-Agent, connect/read timeouts, redirects followed by hand and only to allowed
hosts, a byte limit enforced while streaming, and retries with exponential backoff
and jitter on connection errors, 429 and 5xx (honouring Retry-After and
X-RateLimit-*). A URL that still fails raises `FetchError` with a reason code.

Every wait (the rate limit, Crawl-delay, Retry-After, the capped backoff) sleeps on the
crawl's stop, and every request runs under a clock the stop can cut, so once the crawl
stops no request starts and none in flight lasts: they raise `CrawlStopped`, which is
not a failure of the URL (it stays pending for the next run).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from crawler.credentials import redact
from crawler.deadline import CrawlStop, DeadlineAdapter, deadline
from crawler.origins import AllowedOrigins, BadUrl
from crawler.ratelimit import HostRateLimiter
from crawler.robots import ROBOTS_MAX_BYTES, RobotsCache

# urllib3 logs a hostile server's malformed headers as a warning with a traceback; the fetcher
# turns every such answer into the URL's failure with a reason, so the log line is only noise.
logging.getLogger("urllib3").setLevel(logging.ERROR)

if TYPE_CHECKING:  # config imports the sites, which import this module
    from crawler.config import CrawlerConfig

# Reasons a later run should try again; everything else is the content's or the
# site's final answer and is kept as failed until --retry-failed. robots_disallowed is
# not here: robots.txt is re-read once per run anyway, so a URL it blocked is re-checked
# against the new file each run without a request to the URL itself (see engine).
TRANSIENT_REASONS = frozenset(
    {
        "connection",
        "timeout",
        "truncated",
        "http_408",
        "http_429",
        "http_5xx",
        "retry_after_too_long",
        "robots_unavailable",
    }
)
RECHECKED_REASONS = frozenset({"robots_disallowed", "crawl_delay_too_long"})


class FetchError(Exception):
    """A URL's failure with a reason. Its detail may quote a library's or a server's words (a URL with
    its query, a body): every site key is masked here, the one place all those words pass."""

    def __init__(self, reason: str, detail: str = "") -> None:
        detail = redact(detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Fetched:
    url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # case-insensitive for responses, as HTTP header names are
    body: bytes


def host_of(url: str) -> str:
    """The URL's host name for rate limiting; "" for a URL too malformed to have one."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@dataclass
class _Call:
    """One request as it travels through redirects (which may change its URL and method)."""

    method: str
    url: str
    headers: dict[str, str] | None
    json_body: dict | None
    limit: int  # bytes of body
    accept_4xx: bool  # a 4xx is an answer (robots.txt), not a failure
    cut_at_limit: bool  # keep the first `limit` bytes of a longer body instead of failing it
    secret_params: Mapping[str, str] | None = None  # added to the query when sent, never to `url`


@dataclass
class _Redirect:
    location: str
    status: int


@dataclass
class _Retryable:
    failure: FetchError
    wait: float | None = None  # the server's Retry-After, when it gave one


class Fetcher:
    def __init__(self, config: CrawlerConfig, limiter: HostRateLimiter) -> None:
        self.config = config
        self.limiter = limiter
        self.stop: CrawlStop = limiter.stop  # one stop for the waits and the requests
        self.robots = RobotsCache(
            config.user_agent,
            self._fetch_robots,
            on_crawl_delay=lambda host, delay: limiter.set_rate(host, 1.0 / delay),
            max_crawl_delay=config.max_crawl_delay,
        )
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._local = threading.local()
        # Hosts that never answered and exhausted their retries: further requests to them fail
        # at once, so a user without network gets the verdict in seconds, not after every URL's backoff.
        self._answered: set[str] = set()
        self._dead: set[str] = set()
        self.first_failure = ""

    # ------------------------------------------------------------------ public

    def get(
        self,
        url: str,
        allowed: AllowedOrigins,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
        obey_robots: bool = True,
        secret_params: Mapping[str, str] | None = None,
    ) -> Fetched:
        """`secret_params` (a site's API key) join the query only as the request is sent: `url`,
        the Fetched's url and every message keep the URL without them."""
        return self._request(
            "GET",
            url,
            allowed,
            headers=headers,
            max_bytes=max_bytes,
            obey_robots=obey_robots,
            secret_params=secret_params,
        )

    def post_json(
        self,
        url: str,
        payload: dict,
        allowed: AllowedOrigins,
        headers: dict[str, str] | None = None,
        obey_robots: bool = True,
    ) -> Fetched:
        return self._request(
            "POST", url, allowed, headers=headers, json_body=payload, obey_robots=obey_robots
        )

    # ------------------------------------------------------------------ internals

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[key] += n

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe, so each worker keeps its own
        # (with its own keep-alive pool).
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.config.user_agent
            adapter = DeadlineAdapter(pool_connections=32, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def _fetch_robots(self, url: str) -> tuple[int, bytes]:
        fetched = self._request(
            "GET",
            url,
            AllowedOrigins(anywhere=True),
            max_bytes=ROBOTS_MAX_BYTES,
            obey_robots=False,
            accept_4xx=True,
            cut_at_limit=True,
        )
        return fetched.status, fetched.body

    def _request(
        self,
        method: str,
        url: str,
        allowed: AllowedOrigins,
        *,
        headers: dict[str, str] | None = None,
        json_body: dict | None = None,
        max_bytes: int | None = None,
        obey_robots: bool = True,
        accept_4xx: bool = False,
        cut_at_limit: bool = False,
        secret_params: Mapping[str, str] | None = None,
    ) -> Fetched:
        """One URL to its final answer: each loop is one attempt, a redirect or a retry.

        `cut_at_limit` keeps the first `max_bytes` of a longer body instead of failing it (robots.txt)."""
        call = _Call(
            method,
            url,
            headers,
            json_body,
            max_bytes or self.config.max_bytes,
            accept_4xx,
            cut_at_limit,
            secret_params,
        )
        _check_target(url, allowed)
        redirects = 0
        attempt = 0
        while True:
            self._check_may_request(call.url, obey_robots)
            outcome = self._attempt(call)
            if isinstance(outcome, Fetched):
                return outcome
            if isinstance(outcome, _Redirect):
                redirects += 1
                _leave_host(call, self._follow(call.url, outcome, redirects, allowed))
                if outcome.status == 303 or (outcome.status in (301, 302) and call.method == "POST"):
                    call.method, call.json_body = "GET", None
                continue
            self._wait_before_retry(call.url, outcome, attempt)
            attempt += 1
            self._count("retries")

    def _check_may_request(self, url: str, obey_robots: bool) -> None:
        """Before every attempt (redirect targets included): the host is alive and robots.txt allows it."""
        host = host_of(url)
        if host in self._dead:
            raise FetchError("connection", f"{host} could not be reached earlier in this run")
        if obey_robots:
            verdict = self.robots.check(url)
            if not verdict.allowed:
                raise FetchError(verdict.reason, url)

    def _attempt(self, call: _Call) -> Fetched | _Redirect | _Retryable:
        """One request under the wall-clock deadline: a final answer, a redirect to follow, or a
        failure worth retrying. Anything else raises FetchError: whatever a server or a URL does,
        it is this URL's failure with a reason, never an exception that stops the crawl."""
        url = call.url
        host = host_of(url)
        self.limiter.acquire(host)
        self._count("requests")
        with deadline(self.config.request_deadline, self.stop) as clock:
            try:
                outcome = self._send(call)
                if clock.expired:  # the shut-down socket read as a cut transfer
                    raise self._deadline_failure(url)
                return outcome
            except FetchError as exc:
                if clock.expired:
                    raise self._deadline_failure(url) from exc
                raise
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                ValueError,
                UnicodeError,
            ) as exc:
                if clock.expired:
                    raise self._deadline_failure(url) from exc
                # A malformed answer (two Content-Lengths, a bad header line) or a URL requests refuses.
                raise FetchError("bad_response", f"{url}: {exc.__class__.__name__}: {exc}"[:500]) from exc

    def _deadline_failure(self, url: str) -> FetchError:
        """Not retried in this run: a host that trickles bytes would cost one deadline per retry."""
        failure = FetchError(
            "timeout",
            f"{url}: no complete answer within request_deadline = {self.config.request_deadline:g} s",
        )
        self._note_failure(failure)
        return failure

    def _send(self, call: _Call) -> Fetched | _Redirect | _Retryable:
        url = call.url
        host = host_of(url)
        try:
            response = self._session().request(
                call.method,
                url,
                params=call.secret_params,
                headers=call.headers,
                json=call.json_body,
                stream=True,
                allow_redirects=False,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
        except requests.Timeout as exc:
            return _Retryable(FetchError("timeout", str(exc)))
        except requests.ConnectionError as exc:
            if _is_name_resolution_error(exc):
                # An unknown host name will not resolve in a few seconds: no backoff,
                # the host is skipped for this run and retried on the next one.
                failure = FetchError("connection", f"cannot resolve host name {host}")
                self._note_failure(failure)
                self._dead.add(host)
                raise failure from exc
            return _Retryable(FetchError("connection", str(exc)))
        self._count("responses")
        self._answered.add(host)
        with response:
            self._note_rate_headers(host, response)
            if response.is_redirect:
                location = response.headers.get("Location", "")
                with contextlib.suppress(ValueError):  # unjoinable: _follow names what is wrong with it
                    location = urljoin(url, location)
                return _Redirect(location, response.status_code)
            status = response.status_code
            if status == 429 or status >= 500 or status == 408:
                reason = "http_5xx" if status >= 500 else f"http_{status}"
                return _Retryable(
                    FetchError(reason, f"{url} answered {status}"),
                    _retry_after_seconds(response.headers.get("Retry-After")),
                )
            if status >= 400 and not call.accept_4xx:
                raise FetchError(f"http_{status}", url)
            try:
                body = _read_limited(response, call.limit, call.cut_at_limit)
            except FetchError as exc:
                if exc.reason not in ("truncated", "timeout"):
                    raise
                return _Retryable(exc)
            return Fetched(url, status, CaseInsensitiveDict(response.headers), body)

    def _follow(self, url: str, redirect: _Redirect, redirects: int, allowed: AllowedOrigins) -> str:
        """Redirects are followed by hand so that each hop is checked like a new URL (origin included)."""
        if redirects > self.config.max_redirects:
            raise FetchError("too_many_redirects", redirect.location)
        try:
            permitted = allowed.allows(redirect.location)
        except BadUrl as exc:
            raise FetchError("bad_redirect", f"{url} -> {exc}") from exc
        if not permitted:
            raise FetchError("offhost_redirect", f"{url} -> {redirect.location}")
        return redirect.location

    def _wait_before_retry(self, url: str, outcome: _Retryable, attempt: int) -> None:
        """Hold the host for Retry-After or the backoff; raise the failure when no tries are left."""
        host = host_of(url)
        failure = outcome.failure
        if outcome.wait is not None:
            if outcome.wait > self.config.max_retry_after:
                raise FetchError("retry_after_too_long", f"{url} asked to wait {outcome.wait:.0f}s")
            if attempt < self.config.retries:
                self.limiter.defer(host, outcome.wait)
                return
        if attempt >= self.config.retries:
            if failure.reason in ("connection", "timeout") and host not in self._answered:
                self._dead.add(host)
            self._note_failure(failure)
            raise failure
        self.limiter.defer(host, backoff_seconds(self.config.backoff, self.config.max_backoff, attempt))

    def _note_failure(self, failure: FetchError) -> None:
        if not self.first_failure:
            self.first_failure = str(failure)

    def _note_rate_headers(self, host: str, response: requests.Response) -> None:
        """AniList-style budgets: when none is left, hold the host until the reset time."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            if int(remaining) > 0:
                return
            reset_at = float(reset)
        except ValueError:
            return
        # Epoch seconds (AniList, GitHub) or seconds from now (some others).
        wait = reset_at - time.time() if reset_at > 1e9 else reset_at
        if 0 < wait <= self.config.max_retry_after:
            self.limiter.defer(host, wait)


def backoff_seconds(backoff: float, max_backoff: float, attempt: int) -> float:
    """`backoff` doubled per attempt plus up to as much again of jitter, never above `max_backoff`:
    without the cap, `retries = 30` would put a worker to sleep for years. At the cap the waits
    still spread over its upper half, so workers held together do not retry in step."""
    delay = min(backoff * 2.0 ** min(attempt, 64), max_backoff / 2)
    return delay + random.uniform(0, delay)


def _leave_host(call: _Call, location: str) -> None:
    """Follow a redirect: an account's Authorization header and key parameters go to the site's own
    host only, never to whatever host a redirect names (a CDN, a mirror)."""
    if host_of(location) != host_of(call.url):
        call.secret_params = None
        if call.headers:
            call.headers = {k: v for k, v in call.headers.items() if k.lower() != "authorization"}
    call.url = location


def _check_target(url: str, allowed: AllowedOrigins) -> None:
    try:
        permitted = allowed.allows(url)
    except BadUrl as exc:
        raise FetchError("bad_url", str(exc)) from exc
    if not permitted:
        raise FetchError("offhost_url", url)


def _is_name_resolution_error(exc: Exception) -> bool:
    """requests wraps urllib3's NameResolutionError inside a MaxRetryError inside its ConnectionError."""
    seen = 0
    current: object = exc
    while current is not None and seen < 5:
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return True
        inner = getattr(current, "reason", None)
        if inner is None and getattr(current, "args", None):
            inner = current.args[0] if isinstance(current.args[0], BaseException) else None
        current, seen = inner, seen + 1
    return False


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait, or None when the header gives no usable wait (absent, negative, NaN, in the
    past, unparseable): then the ordinary backoff applies, never an immediate retry."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _read_limited(response: requests.Response, limit: int, cut: bool = False) -> bytes:
    """Read the body, stopping as soon as it exceeds `limit` (decoded) bytes: a failure, or with
    `cut` the first `limit` bytes."""
    declared = response.headers.get("Content-Length")
    if not cut and declared and declared.isdigit() and int(declared) > limit:
        raise FetchError("too_large", f"Content-Length {declared} > {limit}")
    chunks = []
    total = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            total += len(chunk)
            if total > limit:
                if cut:
                    chunks.append(chunk[: len(chunk) - (total - limit)])
                    break
                raise FetchError("too_large", f"more than {limit} bytes")
            chunks.append(chunk)
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.ConnectionError,
        urllib3.exceptions.HTTPError,
    ) as exc:
        raise FetchError("truncated", f"{response.url}: {exc}") from exc
    except requests.Timeout as exc:
        raise FetchError("timeout", str(exc)) from exc
    return b"".join(chunks)
