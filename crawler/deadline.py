"""A wall-clock deadline for one HTTP request: connect, headers and body together.

requests' `timeout` only measures silence, so a server that sends one byte a second (in
its headers or its body) or endless one-byte chunks is never timed out: a 6 KB image
would take two hours. Here each attempt runs under a timer that, when the deadline
passes, shuts the connection's socket down; the blocked read in the worker returns at
once and the fetcher reports `timeout`. The connection in use is learned from urllib3's
pool, which hands it to `_make_request` for every request, fresh or kept alive.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


class RequestClock:
    """One attempt's deadline; `expired` tells the fetcher why its read failed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connection: Any = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
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


@contextmanager
def deadline(seconds: float) -> Iterator[RequestClock]:
    """Run one request (and the reading of its body) inside this block."""
    clock = RequestClock(seconds)
    _local.clock = clock
    clock._start()
    try:
        yield clock
    finally:
        clock._stop()
        _local.clock = None


class _WatchedPool:
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        clock = getattr(_local, "clock", None)
        if clock is not None:
            clock.watch(conn)
        return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPPool(_WatchedPool, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    pass


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose pools report each connection to the running `deadline` block."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
