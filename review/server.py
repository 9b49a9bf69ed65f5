"""The HTTP side: a stdlib ThreadingHTTPServer, its routes, and turning answers into responses.

Routes (GET unless marked; every list takes the filters q= site= image= lo= hi=, see review.sources):
  /                      the page (static/index.html); the token rides in the URL's query
  /static/NAME           app.js, app.css
  /api/summary           counts per view and reason, the rules and thresholds, the sites
  /api/crops             ?view=accepted|rejected &reason=REASON|all &sort= &desc= &offset= &limit=
  /api/clusters          ?reason=exact_duplicate|near_duplicate|same_artwork &offset= &limit=
  /api/images            ?reason= &sort=boxes|id &desc= &offset= &limit=  images with no accepted face
  /api/image             ?sha=  one source image with every box on it (the viewer)
  /api/crop              ?id=  one crop (the viewer's deep link)
  /api/similar           ?id= &limit=  the nearest faces by dedup's perceptual hashes
  /api/scores            ?desc= &offset= &limit=  accepted crops by the discriminator's score, lowest first
  POST /api/crops        {"items": [{"id", "action": promote|demote|clear, "reason"}]}
  POST /api/clusters     {"items": [{"id", "action": split|keep|clear}]}
  /crop/ID               the crop's PNG wherever it lies now
  /thumb/ID              a 160 px JPEG of it (review.thumbs), what the grids show
  /srcthumb/SHA256       a 160 px JPEG of a source image (the no-face view)
  /file/PATH             an image under DATA (a source image)
Every request is checked by `review.security` first; handlers only see allowed ones.
The scores file is the one `python -m review` was started with (review.scores), never a request's.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from facecrop import rules
from facecrop.config import Thresholds
from review import images, security, similar
from review.actions import ActionError, Actions
from review.clusters import LINK_LABELS, ClusterIndex
from review.scores import ScoreIndex, ScoreSource
from review.sources import Filter
from review.thumbs import Thumbs
from review.views import SORT_KEYS, VALUE, CropIndex, Page, Stale

logger = logging.getLogger("review")

STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}
MAX_BODY = 4 * 1024 * 1024


class App:
    """Everything a request handler needs: the indexes, the actions, the token and the allowed hosts."""

    def __init__(
        self, data_dir: Path, thresholds: Thresholds, token: str, scores: ScoreSource | None = None
    ) -> None:
        self.data = Path(data_dir)
        self.token = token
        self.crops = CropIndex(self.data, thresholds)
        self.clusters = ClusterIndex(self.data)
        self.scores = ScoreIndex(scores or ScoreSource())
        self.actions = Actions(self.data, self.crops, self.clusters)
        self.thumbs = Thumbs()
        self.hasher = similar.Hasher(self.data)
        self.allowed: frozenset[str] = frozenset()
        self.static = {
            name: resources.files("review").joinpath("static").joinpath(name).read_bytes() for name in STATIC
        }

    def refresh(self) -> None:
        self.crops.refresh()
        self.clusters.refresh()


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int(query.get(name, [default])[0])
    except ValueError:
        return default


def _one(query: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    return query.get(name, [default])[0]


def data_summary(app: App) -> dict[str, Any]:
    """Counts for the header, the reason tabs (with each reason's rule and threshold) and the filter menus."""
    crops, clusters = app.crops, app.clusters
    counts = crops.counts()
    with crops.lock:
        counts["sites"] = crops.sources.site_counts(crops.src)
    counts.update(images.image_summary(crops))
    counts["clusters"] = len(clusters.clusters)
    counts["cluster_kinds"] = clusters.kind_counts()
    counts["link_labels"] = LINK_LABELS
    counts["dedup_decisions"] = len(clusters.decided)
    counts["hashes"] = {"kind": clusters.hashes.kind, "faces": len(clusters.hashes.ids)}
    counts["rules"] = rules.threshold_table(crops.thresholds)
    counts["sort_keys"] = {key: label for key, (_, label) in SORT_KEYS.items()}
    counts["data"] = os.fspath(crops.layout.data)
    counts["scores"] = app.scores.summary(crops)
    return counts


def page_json(page: Page) -> dict[str, Any]:
    return {"total": page.total, "offset": page.offset, "items": page.items, "counts": page.counts}


def crops_page(app: App, query: dict[str, list[str]]) -> dict[str, Any]:
    view = _one(query, "view", "rejected")
    sort = _one(query, "sort", VALUE if view != "accepted" else "likelihood")
    if sort not in SORT_KEYS and sort not in (VALUE, "id"):
        raise ActionError(f"unknown sort {sort!r}")
    page = app.crops.page(
        str(view),
        _one(query, "reason"),
        str(sort),
        _one(query, "desc", "0") == "1",
        _int(query, "offset", 0),
        _int(query, "limit", 100),
        Filter.from_query(query),
    )
    return page_json(page)


def scores_page(app: App, query: dict[str, list[str]]) -> dict[str, Any]:
    page = app.scores.page(
        app.crops,
        Filter.from_query(query),
        _one(query, "desc", "0") == "1",
        _int(query, "offset", 0),
        _int(query, "limit", 100),
    )
    return page_json(page)


def images_page(app: App, query: dict[str, list[str]]) -> dict[str, Any]:
    sort = _one(query, "sort", "boxes")
    if sort not in images.IMAGE_SORTS:
        raise ActionError(f"unknown sort {sort!r}")
    page = images.image_page(
        app.crops,
        Filter.from_query(query),
        _one(query, "reason") or None,
        str(sort),
        _one(query, "desc", "0") == "1",
        _int(query, "offset", 0),
        _int(query, "limit", 60),
    )
    return page_json(page)


def one_image(app: App, query: dict[str, list[str]]) -> dict[str, Any] | None:
    with app.crops.lock:
        code = images.find_image(app.crops, _one(query, "sha", "") or "")
        return None if code is None else images.image_card(app.crops, code, full=True)


def one_crop(app: App, query: dict[str, list[str]]) -> dict[str, Any] | None:
    with app.crops.lock:
        k = app.crops.find(_one(query, "id", "") or "")
        return app.crops.card(k) if k is not None else None


def similar_faces(app: App, query: dict[str, list[str]]) -> dict[str, Any] | None:
    return similar.similar(
        _one(query, "id", "") or "",
        app.crops,
        app.clusters,
        app.hasher,
        _int(query, "limit", similar.DEFAULT_LIMIT),
    )


def clusters_page(app: App, query: dict[str, list[str]]) -> dict[str, Any]:
    page = app.clusters.page(
        app.crops,
        _int(query, "offset", 0),
        _int(query, "limit", 20),
        Filter.from_query(query),
        _one(query, "reason") or None,
    )
    return page_json(page)


# GET /api/NAME -> the answer (None: 404)
API = {
    "/api/summary": lambda app, query: data_summary(app),
    "/api/crops": crops_page,
    "/api/clusters": clusters_page,
    "/api/images": images_page,
    "/api/image": one_image,
    "/api/crop": one_crop,
    "/api/similar": similar_faces,
    "/api/scores": scores_page,
}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "animefaces-review"
    sys_version = ""
    app: App  # set on the subclass `serve` makes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        logger.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ responses
    def send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {
            **security.HEADERS,
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            **(extra or {}),
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def error(self, status: int, message: str) -> None:
        self.send_json({"error": message}, status)

    def send_image(self, path: Path | None) -> None:
        if path is None:
            self.error(404, "not found")
            return
        try:
            body = path.read_bytes()
        except OSError:
            self.error(404, "not found")
            return
        self.send(
            200,
            body,
            security.IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            {"Cache-Control": "private, max-age=60"},
        )

    # ------------------------------------------------------------------ dispatch
    def handle_one(self, method: str) -> None:
        if not security.host_allowed(self.headers, self.app.allowed):
            self.error(403, "this app answers only to its own address (Host header refused)")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        for attempt in (1, 2):
            try:
                self.app.refresh()
                if method == "POST":
                    self.post(url.path)
                else:
                    self.get(url.path, query)
                return
            except Stale:
                if attempt == 2:
                    self.error(503, "the manifest is being rewritten; reload in a moment")
            except ActionError as exc:
                self.error(400, str(exc))
                return

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.handle_one("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self.handle_one("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.handle_one("POST")

    def get(self, path: str, query: dict[str, list[str]]) -> None:
        app = self.app
        if path in ("/", "/index.html"):
            self.send(200, app.static["index.html"], STATIC["index.html"])
        elif path.startswith("/static/") and path[len("/static/") :] in STATIC:
            name = path[len("/static/") :]
            self.send(200, app.static[name], STATIC[name])
        elif path in API:
            answer = API[path](app, query)
            if answer is None:
                self.error(404, "not found")
            else:
                self.send_json(answer)
        elif path == "/favicon.ico":
            self.send(204, b"", "image/x-icon")
        elif path.startswith("/thumb/"):
            self.send_thumb(app.crops.crop_file(path[len("/thumb/") :]))
        elif path.startswith("/srcthumb/"):
            self.send_thumb(self.source_file(path[len("/srcthumb/") :]))
        elif path.startswith("/crop/"):
            self.send_image(app.crops.crop_file(path[len("/crop/") :]))
        elif path.startswith("/file/"):
            self.send_image(security.data_file(app.data, path[len("/file/") :]))
        else:
            self.error(404, "not found")

    def source_file(self, sha: str) -> Path | None:
        """A source image by its sha256 (never a path from the URL), confined to DATA like /file/."""
        crops = self.app.crops
        with crops.lock:
            code = crops.sources.code.get(sha)
            rel = crops.sources.path(code) if code is not None else None
        return security.data_file(self.app.data, quote(rel)) if rel else None

    def send_thumb(self, found: Path | None) -> None:
        body = self.app.thumbs.get(found) if found else None
        if body is None:
            self.error(404, "not found")
        else:
            self.send(200, body, "image/jpeg", {"Cache-Control": "private, max-age=60"})

    def post(self, path: str) -> None:
        refusal = security.write_refusal(self.headers, self.app.token, self.app.allowed)
        if refusal:
            logger.warning("refused a write to %s: %s", path, refusal)
            self.error(403, refusal)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self.error(400, "a JSON body is required")
            return
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, RecursionError):
            self.error(400, "the body is not JSON")
            return
        if path == "/api/crops":
            answer = self.app.actions.decide_crops(body)
            # a demote takes the crop out of the discriminator's view too: its tab counts it
            answer["counts"]["scored"] = self.app.scores.summary(self.app.crops)["shown"]
            self.send_json(answer)
        elif path == "/api/clusters":
            self.send_json(self.app.actions.decide_clusters(body))
        else:
            self.error(404, "not found")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a browser's idle keep-alive connection must not hold up Ctrl-C
    allow_reuse_address = True


def make_server(
    data_dir: Path,
    thresholds: Thresholds,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    scores: ScoreSource | None = None,
) -> tuple[Server, App, str]:
    """A bound (not yet serving) server, its app, and the URL to open (with the token)."""
    app = App(data_dir, thresholds, token or security.new_token(), scores)
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = Server((host, port), handler)
    bound_port = server.server_address[1]
    app.allowed = security.allowed_hosts(host, bound_port)
    shown = f"[{host}]" if ":" in host else host
    app.refresh()  # index the manifest now, so the first page load is only the page's own rows
    app.scores.refresh(app.crops)  # and the scores file, lined up with it
    return server, app, f"http://{shown}:{bound_port}/?token={quote(app.token)}"


def serve_in_thread(server: Server) -> threading.Thread:
    """For the benchmark and tests that drive the app in-process."""
    thread = threading.Thread(target=server.serve_forever, name="review-server", daemon=True)
    thread.start()
    return thread
