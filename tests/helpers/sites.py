"""Real HTTP servers on 127.0.0.x that behave like the crawled sites.

A `SiteServer` answers from a route table (path+query, or path alone), can play a
sequence of replies for one URL (429 then 200, 503 twice then 200), reset the
connection, cut a body short, and logs every request with its server-side time, so
tests assert politeness from what the server saw. `serve_getchu` and `danbooru_post`
dress one up as those sites from their real recorded responses (tests/helpers/realsites.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.fetcher import Fetched
from tests.helpers import realsites as recorded


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    action: str = ""  # "" | "reset" (TCP RST, no answer) | "truncate" (declare the full length, send half)
    delay: float = 0.0


@dataclasses.dataclass
class Hit:
    time: float  # time.monotonic() when the server read the request line
    method: str
    host: str
    path: str
    headers: dict[str, str]
    body: bytes


class SiteServer:
    Reply = Reply  # so a test builds replies from the server it was given

    def __init__(self, address: str = "127.0.0.1", latency: float = 0.0) -> None:
        self.routes: dict[str, list[Reply | Callable[[Hit], Reply]]] = {}
        self.served: dict[str, int] = {}
        self.log: list[Hit] = []
        self.latency = latency
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # clients that hang up mid-answer (a killed crawler, a size limit) are expected

        self.httpd = Server((address, 0), Handler)
        self.httpd.daemon_threads = True
        self.address = address
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, *replies: Reply | Callable[[Hit], Reply]) -> str:
        """Serve `replies` in turn for `path` (the last one repeats); returns the full URL."""
        self.routes[path] = list(replies)
        return self.url(path)

    def hits(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.log if path is None or h.path == path]

    def _handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        now = time.monotonic()
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        hit = Hit(now, method, request.headers.get("Host", ""), request.path, dict(request.headers), body)
        with self._lock:
            self.log.append(hit)
            key = request.path if request.path in self.routes else request.path.split("?", 1)[0]
            replies = self.routes.get(key)
            if replies is None:
                reply: Reply | Callable[[Hit], Reply] = Reply(
                    404, b"<html><body>not found</body></html>", {"Content-Type": "text/html"}
                )
            else:
                index = self.served.get(key, 0)
                self.served[key] = index + 1
                reply = replies[min(index, len(replies) - 1)]
        if callable(reply):
            reply = reply(hit)
        if self.latency or reply.delay:
            time.sleep(self.latency + reply.delay)
        if reply.action == "reset":
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.connection.close()
            request.close_connection = True
            return
        request.send_response(reply.status)
        headers = {"Content-Type": "application/octet-stream", **reply.headers}
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(reply.body)))
        if reply.action == "truncate":
            request.send_header("Connection", "close")
        request.end_headers()
        if reply.action == "truncate":
            request.wfile.write(reply.body[: len(reply.body) // 2])
            request.wfile.flush()
            request.close_connection = True
            return
        if method != "HEAD":
            request.wfile.write(reply.body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetched(url: str, body: bytes) -> Fetched:
    """`body` as the crawler's fetcher returns a 200 for `url`, for a site parser to read."""
    return Fetched(url, 200, {}, body)


# ---------------------------------------------------------------- images a site should never have served


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid tiny PNG whose header declares huge dimensions (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- realistic sites

GETCHU_LAYOUTS = (*recorded.GETCHU_LISTINGS, "2026")


def serve_getchu(
    server: SiteServer,
    products: dict[int, list[bytes]],
    *,
    realsites: Path,
    year: int = 2010,
    month: int = 1,
    genre: str = "pc_soft",
    layout: str = "2015_04",
    age_gate_ignores_cookie: set[int] = frozenset(),
) -> dict[int, list[str]]:
    """Serve getchu as the live site does, from its real recorded pages (tests/helpers/realsites.py):
    a month listing in the given layout (a recorded month, or the hand-made 2026 layout), each
    product's `soft.phtml?id=N` redirecting to `/item/N/`, the real item page behind the age gate
    (the adult-flag cookie passes; without it, a redirect to the age-check page), and the
    character images. A product in `age_gate_ignores_cookie` answers with the age check whatever
    the cookie. Returns {product id: [character image paths, in page order]}."""
    html_headers = {"Content-Type": "text/html"}  # no charset, as getchu serves it
    ids = list(products)
    if layout == "2026":
        listing = recorded.getchu_listing_2026(ids)
    else:
        listing = recorded.getchu_listing(realsites, layout, ids)
    server.route(
        f"/all/month_title.html?genre={genre}&gage=&year={year}&month={month:02d}",
        Reply(200, listing, html_headers),
    )
    server.route("/php/attestation.html", Reply(200, recorded.AGE_CHECK_PAGE.encode("euc_jp"), html_headers))
    related = "/brandnew/990001/c990001package_s.jpg"  # another product's image: must never be fetched
    server.route(related, Reply(200, next(iter(products.values()))[0], {"Content-Type": "image/jpeg"}))
    paths: dict[int, list[str]] = {}
    for pid, images in products.items():
        page = recorded.getchu_item(realsites, pid, len(images))
        server.route(f"/soft.phtml?id={pid}", Reply(302, b"", {"Location": f"/item/{pid}/"}))
        server.route(f"/item/{pid}/", _age_gated(pid, page, html_headers, pid in age_gate_ignores_cookie))
        paths[pid] = recorded.getchu_image_paths(pid, len(images))
        for path, image in zip(paths[pid], images, strict=True):
            server.route(path, Reply(200, image, {"Content-Type": "image/jpeg"}))
    return paths


def _age_gated(pid: int, page: bytes, headers: dict[str, str], ignore_cookie: bool) -> Callable[[Hit], Reply]:
    def reply(hit: Hit) -> Reply:
        if not ignore_cookie and "getchu_adalt_flag=getchu.com" in hit.headers.get("Cookie", ""):
            return Reply(200, page, headers)
        return Reply(302, b"", {"Location": f"/php/attestation.html?aurl=%2Fitem%2F{pid}%2F"})

    return reply


def danbooru_post(
    server: SiteServer, post_id: int, image: bytes, *, md5: str | None = None, hidden: bool = False
) -> dict:
    """A post as /posts.json returns it (trimmed to the fields that matter, shaped like the real API)."""
    digest = md5 or hashlib.md5(image).hexdigest()
    post: dict[str, Any] = {
        "id": post_id,
        "created_at": "2024-05-01T12:00:00.000-04:00",
        "uploader_id": 1,
        "score": 10,
        "source": "https://example.invalid/art",
        "rating": "g",
        "image_width": 800,
        "image_height": 1000,
        "tag_string": "1girl solo long_hair smile",
        "file_ext": "jpg",
        "file_size": len(image),
        "has_large": False,
    }
    if hidden:
        return post
    original = f"/data/original/{digest[:2]}/{digest[2:4]}/{digest}.jpg"
    server.route(original, Reply(200, image, {"Content-Type": "image/jpeg"}))
    post.update(
        md5=digest,
        file_url=server.url(original),
        large_file_url=server.url(original),
        preview_file_url=server.url(f"/data/180x180/{digest}.jpg"),
        media_asset={
            "id": post_id * 10,
            "md5": digest,
            "file_ext": "jpg",
            "image_width": 800,
            "image_height": 1000,
            "variants": [
                {
                    "type": "180x180",
                    "url": server.url(f"/data/180x180/{digest}.jpg"),
                    "width": 144,
                    "height": 180,
                    "file_ext": "jpg",
                },
                {
                    "type": "360x360",
                    "url": server.url(f"/data/360x360/{digest}.jpg"),
                    "width": 288,
                    "height": 360,
                    "file_ext": "jpg",
                },
                {
                    "type": "original",
                    "url": server.url(original),
                    "width": 800,
                    "height": 1000,
                    "file_ext": "jpg",
                },
            ],
        },
    )
    return post
