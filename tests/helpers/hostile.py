"""A hostile HTTP server on 127.0.0.1: raw sockets, one route per fault, for the reliability tests.

http.server cannot send two different Content-Length headers, trickle a status line one
byte at a time or stream chunks forever, so this server writes bytes by hand. Every fault
is a function of the socket; `good` routes serve real images so a crawl through the
server can be checked for "every good URL stored, every bad one failed with a reason".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

Handler = Callable[[socket.socket, threading.Event], None]


def _response(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


def send(data: bytes) -> Handler:
    def send_all(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(data)

    return send_all


def image(body: bytes, extra: str = "") -> Handler:
    head = (
        f"HTTP/1.1 200 OK\nContent-Type: image/jpeg\nContent-Length: {len(body)}\nConnection: close\n{extra}"
    )
    return send(_response(head, body))


def redirect(location: str) -> Handler:
    return send(
        _response(f"HTTP/1.1 302 Found\nLocation: {location}\nContent-Length: 0\nConnection: close\n")
    )


def trickle(prefix: bytes, byte: bytes, every: float) -> Handler:
    """`prefix`, then `byte` every `every` seconds until the client gives up (never silent long)."""

    def send_slowly(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(prefix)
        while not stop.wait(every):
            sock.sendall(byte)

    return send_slowly


def endless_chunks(every: float) -> Handler:
    head = _response("HTTP/1.1 200 OK\nContent-Type: image/jpeg\nTransfer-Encoding: chunked\n")

    def send_chunks(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head)
        while not stop.wait(every):
            sock.sendall(b"1\r\nx\r\n")

    return send_chunks


FAULTS: dict[str, tuple[Handler, str]] = {
    # path: (handler, the reason the crawler must record)
    "/two-lengths.jpg": (
        send(
            _response(
                "HTTP/1.1 200 OK\nContent-Type: image/jpeg\nContent-Length: 10\nContent-Length: 20\n",
                b"x" * 20,
            )
        ),
        "bad_response",
    ),
    # An unreadable Content-Length is ignored by http.client: the body runs to the close and is judged.
    "/length-abc.jpg": (
        send(_response("HTTP/1.1 200 OK\nContent-Type: image/jpeg\nContent-Length: abc\n", b"x" * 20)),
        "not_image",
    ),
    "/garbage-status.jpg": (send(b"HELLO THERE\r\n\r\n"), "connection"),  # no HTTP answer at all: retried
    "/bad-chunks.jpg": (
        send(
            _response(
                "HTTP/1.1 200 OK\nContent-Type: image/jpeg\nTransfer-Encoding: chunked\n",
                b"zz\r\nnot a chunk\r\n",
            )
        ),
        "truncated",
    ),
    "/to-bad-port.jpg": (redirect("http://127.0.0.1:99999/x.jpg"), "bad_redirect"),
    # requests parses a redirect's Location even when it does not follow it, and raises ValueError.
    "/to-bad-ipv6.jpg": (redirect("http://[::1"), "bad_response"),
    "/to-ftp.jpg": (redirect("ftp://127.0.0.1/x.jpg"), "bad_redirect"),
    "/slow-headers.jpg": (trickle(b"HTTP/1.1 200 OK\r\n", b"X", 0.2), "timeout"),
    "/slow-body.jpg": (
        trickle(_response("HTTP/1.1 200 OK\nContent-Type: image/jpeg\nContent-Length: 6000\n"), b"\xff", 0.2),
        "timeout",
    ),
    "/endless-chunks.jpg": (endless_chunks(0.1), "timeout"),
}


class HostileServer:
    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = dict(routes)
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                path = request.split(b" ", 2)[1].decode("latin-1")
                with self._lock:
                    self.hits.append(path)
                handler = self.routes.get(path.split("?")[0])
                if handler is None:
                    sock.sendall(_response("HTTP/1.1 404 Not Found\nContent-Length: 0\nConnection: close\n"))
                    return
                handler(sock, self._stop)
                time.sleep(0.05)  # let the client read before the close
            except OSError:
                return  # the client hung up: what a deadline does

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accepter.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
