"""A small anime database on 127.0.0.1 for the end-to-end test.

It serves what the real sites serve: getchu's real recorded month listings (2014 and
2015 layouts) and its real /item/ page (tests/helpers/realsites.py says what is swapped:
ids, the product title, the number of characters), as EUC-JP bytes without a charset
header, behind the soft.phtml -> /item/N/ redirect and the adult-cookie age gate; a
Danbooru-style /posts.json walked by the `b<id>` cursor; and the images themselves —
real illustrations, photos without faces, a near-duplicate pair and a truncated file
from ../shared/testdata. It records which image paths it served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import realsites as recorded

# (file under testdata, role). Faces were picked from CASCADE_BASELINE.tsv with boxes >= 64 px.
GETCHU_MONTHS = {
    # month -> {product id: (title, [(character name, file, role), ...])}
    1: {
        "1001": (
            "春の<script>alert(1)</script>物語",
            [
                ("桜井 ハル", "full/style2paints_refs__1.png", "face"),
                ("月島 アキ", "full/style2paints_refs__10.png", "face"),
            ],
        ),
        "1002": (
            "ミク・デュオ",
            [
                ("ミク", "full/waifu2x__miku_bg.png", "neardup"),
                ("ミク (ノイズ)", "full/waifu2x__miku_noisy.jpg", "neardup"),
                ("背景", "negative/imagededup__ukbench01380.jpg", "negative"),
            ],
        ),
    },
    2: {
        "1003": (
            "冬のソナタ",
            [
                ("雪村 フユ", "full/style2paints_refs__12.png", "face"),
                ("御坂", "full/animegan__anime_image_misaka_mikoto.png", "face"),
                ("壊れた画像", "full/style2paints_refs__2.png", "corrupt"),
            ],
        ),
    },
}
DANBOORU_POSTS = [
    # (post id, file, role, tags)
    (905, "full/style2paints_refs__7.png", "face", "1girl solo"),
    (904, "negative/pytorch_examples__amber.jpg", "negative", "1girl solo"),
    (903, None, "hidden", "1girl solo"),
    (902, "full/style2paints_refs__1.png", "face", "1girl solo"),  # same bytes as a getchu image
    (901, "negative/realesrgan__wolf_gray.jpg", "negative", "1girl solo"),
]


@dataclasses.dataclass
class LocalSite:
    base: str
    files: dict[str, bytes]  # served path -> bytes
    roles: dict[str, str]  # served path -> face | neardup | negative | corrupt
    sources: dict[str, str]  # served path -> testdata file
    hits: list[str]

    def sha256s(self, *roles: str) -> set[str]:
        return {hashlib.sha256(self.files[p]).hexdigest() for p, r in self.roles.items() if r in roles}


GETCHU_LAYOUT = {1: "2014_12", 2: "2015_04"}  # month -> the recorded listing it is served from
COOKIE = "getchu_adalt_flag=getchu.com"


@pytest.fixture
def local_site(testdata: Path, realsites: Path) -> Iterator[LocalSite]:
    files: dict[str, bytes] = {}
    roles: dict[str, str] = {}
    sources: dict[str, str] = {}
    pages: dict[str, bytes] = {}

    def add_image(path: str, name: str, role: str) -> None:
        data = (testdata / name).read_bytes()
        if role == "corrupt":
            data = data[: len(data) // 3]  # a download cut short
        files[path], roles[path], sources[path] = data, role, name

    for month, products in GETCHU_MONTHS.items():
        ids = [int(pid) for pid in products]
        pages[f"/all/month_title.html?month={month:02d}"] = recorded.getchu_listing(
            realsites, GETCHU_LAYOUT[month], ids
        )
        for pid, (title, characters) in products.items():
            pages[f"/item/{pid}/"] = recorded.getchu_item(realsites, int(pid), len(characters), title=title)
            paths = recorded.getchu_image_paths(int(pid), len(characters))
            for path, (_, name, role) in zip(paths, characters, strict=True):
                add_image(path, name, role)

    # Each post is a real recorded 2020 /posts.json record (realsites/danbooru) with its id, tags,
    # md5 and file path swapped for the image served here; a hidden post loses file_url and md5
    # as Danbooru's hidden posts do.
    danbooru = recorded.danbooru_posts(realsites, "grabber_search_2020-07.json", "")
    posts = []
    for index, (post_id, name, role, tags) in enumerate(DANBOORU_POSTS):
        post = {
            key: value
            for key, value in danbooru[index % len(danbooru)].items()
            if key not in ("file_url", "large_file_url", "preview_file_url", "md5")
        }
        post.update(id=post_id, tag_string=tags, rating="g")
        if name is None:
            posts.append(post)
            continue
        path = f"/data/original/{post_id}{Path(name).suffix}"
        add_image(path, name, role)
        # file_url is filled in once the port is known
        post.update(md5=hashlib.md5(files[path]).hexdigest(), file_ext=Path(name).suffix[1:], _path=path)
        posts.append(post)

    hits: list[str] = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                hits.append(self.path)
            split = urlsplit(self.path)
            query = parse_qs(split.query)
            if split.path == "/posts.json":
                self._posts(query)
            elif split.path == "/all/month_title.html":
                self._send(pages.get(f"{split.path}?month={query.get('month', [''])[0]}"), "text/html")
            elif split.path == "/soft.phtml":  # the live site drops the query on its way to /item/N/
                self._redirect(f"/item/{query.get('id', [''])[0]}/")
            elif split.path.startswith("/item/") and COOKIE not in self.headers.get("Cookie", ""):
                self._redirect(f"/php/attestation.html?aurl={split.path}")
            elif split.path.startswith("/item/"):
                self._send(pages.get(split.path), "text/html")
            elif split.path == "/php/attestation.html":
                self._send(
                    recorded.AGE_CHECK_PAGE.format(aurl=query.get("aurl", [""])[0]).encode("euc_jp"),
                    "text/html",
                )
            else:
                self._send(files.get(split.path), "image/jpeg")

        def _posts(self, query: dict) -> None:
            limit = int(query.get("limit", ["200"])[0])
            page = query.get("page", [""])[0]
            before = int(page[1:]) if page.startswith("b") else 10**9
            chosen = [p for p in posts if p["id"] < before][:limit]
            base = f"http://{self.headers['Host']}"
            out = []
            for post in chosen:
                post = dict(post)
                path = post.pop("_path", None)
                if path:
                    post["file_url"] = base + path
                out.append(post)
            self._send(json.dumps(out).encode(), "application/json")

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, body: bytes | None, content_type: str) -> None:
            if body is None:
                body, status, content_type = b"<html>not found</html>", 404, "text/html"
            else:
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", content_type)  # no charset: like getchu
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalSite(f"http://127.0.0.1:{server.server_address[1]}", files, roles, sources, hits)
    finally:
        server.shutdown()
        server.server_close()
