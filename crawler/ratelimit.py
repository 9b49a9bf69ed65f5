"""Per-host request spacing shared by every thread, so one host never sees more than its rate.

A request may start when its host's next slot is due; the thread that claims it sets
the following slot 1/rate seconds later. Waiting happens outside the lock, so
different hosts proceed in parallel while one host's requests start at least 1/rate
seconds apart. A Retry-After or an exhausted
X-RateLimit budget pushes the host's next slot out for every thread at once.
"""

from __future__ import annotations

import threading
import time


class HostRateLimiter:
    def __init__(self, default_rate: float) -> None:
        self._default_rate = default_rate
        self._rates: dict[str, float] = {}
        self._next: dict[str, float] = {}
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
        the following requests instead of letting them bunch up behind it.
        """
        while True:
            with self._lock:
                now = time.monotonic()
                due = self._next.get(host, 0.0)
                if now >= due:
                    rate = self.rate(host)
                    if rate > 0:
                        self._next[host] = now + 1.0 / rate
                    return
                delay = due - now
            time.sleep(delay)

    def defer(self, host: str, seconds: float) -> None:
        """No request to `host` before `seconds` from now (the server asked us to wait)."""
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._next.get(host, 0.0):
                self._next[host] = until
