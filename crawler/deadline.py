"""A wall-clock deadline for one HTTP request, and the crawl's one stop that cuts every request.

requests' `timeout` only measures silence, so a server that sends one byte a second (in
its headers or its body) or endless one-byte chunks is never timed out: a 6 KB image
would take two hours. Here each attempt runs under a timer that, when the deadline
passes, shuts the connection's socket down; the blocked read in the worker returns at
once and the fetcher reports `timeout`. The connection in use is learned from urllib3's
pool, which hands it to `_validate_conn` for every request, fresh or kept alive.

`CrawlStop` is what SIGTERM and Ctrl-C set. Every wait in the crawler (backoff,
Retry-After, the per-host rate, Crawl-delay) sleeps on its event, and setting it shuts
down the socket of every request in flight the way an expired deadline does, so a
worker asleep for minutes or blocked on a trickling server ends within moments and the
crawl can write its manifest and exit.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import requests
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CrawlStopped(KeyboardInterrupt):
    """Raised in whichever thread meets the stop. It ends the crawl as Ctrl-C does (exit 130), and,
    not being an `Exception`, no handler meant for a bad server or page records the URL as failed:
    the URL stays pending and the next run fetches it."""


class RequestClock:
    """One attempt's deadline; `expired` tells the fetcher why its read failed, `stopped` that the
    crawl's stop cut it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.stopped = False
        self._connection: Any = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, connection: Any) -> None:
        """Called once the connection's socket exists: a cut that came before it applies now."""
        with self._lock:
            self._connection = connection
            late = not self._done and (self.expired or self.stopped)
        if late:
            self._shut()

    def cut(self) -> None:
        """The crawl is stopping: end this request's reads now."""
        with self._lock:
            if self._done:
                return
            self.stopped = True
        self._shut()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            sock = getattr(self._connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: the read has ended anyway
                sock.shutdown(socket.SHUT_RDWR)

    def _start(self) -> None:
        self._timer.start()

    def _stop(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class CrawlStop:
    """The one stop of a crawl, shared by the fetcher, the rate limiter and the engine.

    The signal handler only notes the signal and raises KeyboardInterrupt in the main thread, as
    Ctrl-C always did; it does not set the event itself, because the frame it interrupts may hold
    the event's own lock. The engine sets the event as that exception passes, before it waits for
    its workers, so the workers' sleeps and reads end at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._clocks: set[RequestClock] = set()
        self._lock = threading.Lock()
        self.signalled = False
        self._deferring = False
        self._deferred = False

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        """Wake every sleeper and cut every request in flight; no request starts after this."""
        self._event.set()
        with self._lock:
            clocks = list(self._clocks)
        for clock in clocks:
            clock.cut()

    def check(self) -> None:
        if self._event.is_set():
            raise CrawlStopped("the crawl is stopping")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or raise CrawlStopped the moment the crawl stops."""
        if self._event.wait(min(max(seconds, 0.0), threading.TIMEOUT_MAX)):
            raise CrawlStopped("the crawl is stopping")

    @contextmanager
    def tracking(self, clock: RequestClock) -> Iterator[None]:
        """Known to `set` for the length of one request; a request does not start once stopped."""
        with self._lock:
            self._clocks.add(clock)
        try:
            self.check()  # after registering: a set() from here on cuts this request
            yield
        finally:
            with self._lock:
                self._clocks.discard(clock)

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the crawl. The first raises KeyboardInterrupt in the main thread;
        repeats are ignored, so a second Ctrl-C cannot cut the manifest write short. The earlier
        handlers come back when the crawl ends without a signal (with one, the process is exiting)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        for sig, handler in previous.items():
            if handler is not signal.SIG_IGN:  # an ignored SIGINT (a background job) stays ignored
                signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            if not self.signalled:
                for sig, handler in previous.items():
                    if handler is not None:
                        signal.signal(sig, handler)

    @contextmanager
    def deferring_signals(self) -> Iterator[None]:
        """For the crawl's last writes: a signal now is only noted, and raised once they are done."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._deferred:
            raise KeyboardInterrupt

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled:
            return
        self.signalled = True
        if self._deferring:
            self._deferred = True
            return
        raise KeyboardInterrupt


@contextmanager
def deadline(seconds: float, stop: CrawlStop) -> Iterator[RequestClock]:
    """Run one request (and the reading of its body) inside this block.

    A request the stop cut ends in CrawlStopped, whatever its cut read looked like to requests
    (a reset, a short body, a bad status line): it is not the URL's failure."""
    clock = RequestClock(seconds)
    with stop.tracking(clock):
        _local.clock = clock
        clock._start()
        try:
            yield clock
        finally:
            clock._stop()
            _local.clock = None
            if clock.stopped:
                raise CrawlStopped("the crawl is stopping")


class _WatchedPool:
    def _validate_conn(self, conn: Any) -> None:
        super()._validate_conn(conn)  # type: ignore[misc]  # https connects (and shakes hands) here
        if conn.is_closed:
            # Plain http would connect inside conn.request(), after this hook: connecting first means
            # the socket exists when the clock learns of it, so a deadline or a stop that came while
            # connecting cuts the request right away instead of leaving it to the read timeout.
            conn.connect()
        clock = getattr(_local, "clock", None)
        if clock is not None:
            clock.watch(conn)


class _WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose pools report each connection to the running `deadline` block."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
