"""Per-host request spacing shared by every thread, so one host never sees more than its rate.

A request may start 1/rate seconds after the host's previous one started; the thread
that is awake when that moment comes claims it. Waiting happens outside the lock, so
different hosts proceed in parallel while one host's requests start at least 1/rate
seconds apart. A Retry-After or an exhausted X-RateLimit budget holds the host back
for every thread at once. Every wait sleeps on the crawl's stop, so a stopping crawl
wakes its waiters at once instead of after the host's hold (which may be minutes).
"""

from __future__ import annotations

import threading
import time

from crawler.deadline import CrawlStop


class HostRateLimiter:
    def __init__(self, default_rate: float, stop: CrawlStop | None = None) -> None:
        self.stop = stop or CrawlStop()
        self._default_rate = default_rate
        self._rates: dict[str, float] = {}
        self._last: dict[str, float] = {}  # when the host's latest request was let through
        self._hold: dict[str, float] = {}  # no request before this (Retry-After, exhausted budget)
        self._lock = threading.Lock()

    def set_rate(self, host: str, rate: float) -> None:
        """Register a host's rate; when two sources share a host the stricter rate wins."""
        with self._lock:
            current = self._rates.get(host)
            if current is None or (rate > 0 and (current == 0 or rate < current)):
                self._rates[host] = rate

    def rate(self, host: str) -> float:
        return self._rates.get(host, self._default_rate)

    def acquire(self, host: str) -> None:
        """Block until this host may receive one more request.

        The slot is claimed only by a thread that is awake when it is due, and the next
        slot is counted from that moment: a thread that oversleeps (a busy CPU) delays
        the following requests instead of letting them bunch up behind it. Raises CrawlStopped
        when the crawl stops, before or during the wait.
        """
        while True:
            self.stop.check()
            with self._lock:
                now = time.monotonic()
                rate = self.rate(host)
                due = self._hold.get(host, 0.0)
                if rate > 0 and host in self._last:
                    # Counted from the last start with the current rate, so a rate lowered
                    # meanwhile (a robots.txt Crawl-delay) applies to the very next request.
                    due = max(due, self._last[host] + 1.0 / rate)
                if now >= due:
                    self._last[host] = now
                    return
                delay = due - now
            self.stop.sleep(delay)

    def defer(self, host: str, seconds: float) -> None:
        """No request to `host` before `seconds` from now (the server asked us to wait)."""
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._hold.get(host, 0.0):
                self._hold[host] = until
