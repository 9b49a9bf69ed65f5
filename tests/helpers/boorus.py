"""Local copies of Gelbooru, Moebooru (Konachan) and Zerochan served from their recorded responses in
../shared/realsites, for the crawler's site tests.

Changes to the recorded bytes are the ones a local copy needs, each named where it is made: image
URLs pointed at the local server; an md5 replaced by the md5 of the image served in the real file's
place; Zerochan posts other than the one recorded (3914235) built from it. Bodies written by hand
say so.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout

JSON = {"Content-Type": "application/json; charset=utf-8"}
GELBOORU_FILE = "gelbooru/apkawa_gelbooru_posts_2023-03.json"
KONACHAN_FILE = "moebooru/apkawa_konachan_posts_2023-03.json"
ZEROCHAN_LIST_FILE = "zerochan/apkawa_zerochan_list_2023-03.json"
ZEROCHAN_POST_FILE = "zerochan/apkawa_zerochan_post_3914235_2023-03.json"
GELBOORU_LISTING = "/index.php?page=dapi&s=post&q=index&json=1"
# Ratings of the 10 recorded Gelbooru posts, by id (read off the recording).
GELBOORU_RATINGS = {
    8333903: "s",
    8333860: "q",
    8329156: "g",
    8321190: "s",
    8318307: "e",
    8315396: "s",
    8311716: "g",
    8303110: "e",
    8299561: "g",
    8297763: "q",
}
KONACHAN_CONVERTED = {354323, 354318}  # PNG originals: their jpeg_url is a /jpeg/ conversion


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded(realsites: Path, name: str, origins: dict[str, str] | None = None) -> Any:
    """A recorded body, each real origin in `origins` pointed at the local one it maps to."""
    text = (realsites / name).read_text(encoding="utf-8")
    for real, local in (origins or {}).items():
        text = text.replace(real, local)
    return json.loads(text)


def local_path(url: str, server) -> str:
    assert url.startswith(server.base), url
    return url.removeprefix(server.base)


# ---------------------------------------------------------------- serving the recordings


def gelbooru_body(realsites: Path, server) -> dict:
    """The recorded dapi answer, its image host (img3.gelbooru.com) pointed at the server."""
    return recorded(realsites, GELBOORU_FILE, {"https://img3.gelbooru.com": server.base})


def gelbooru_exhausted(body: dict) -> bytes:
    """HAND-WRITTEN: the answer past the last post. Its shape is the recorded `@attributes` with no
    `post` list; booru-rs (the recording's source) reads a missing `post` as no posts."""
    return json.dumps({"@attributes": {**body["@attributes"], "count": 0}}).encode()


def serve_gelbooru(server, body: dict, tags: str = "1girl solo", per_page: int = 100) -> tuple[str, str]:
    """The listing and the page below its smallest id; returns both paths."""
    first = f"{GELBOORU_LISTING}&tags={quote_plus(tags)}&pid=0&limit={per_page}"
    smallest = min(post["id"] for post in body.get("post", []))
    below = f"{GELBOORU_LISTING}&tags={quote_plus(f'{tags} id:<{smallest}')}&pid=0&limit={per_page}"
    server.route(first, server.Reply(200, json.dumps(body).encode(), JSON))
    server.route(below, server.Reply(200, gelbooru_exhausted(body), JSON))
    return first, below


def serve_files(
    server, posts: list[dict], images: list[bytes], key: str, *, keep_md5: set[int] = frozenset()
):
    """Serve images[i] at posts[i][key]; a post not in keep_md5 gets the md5 of its image (its real file
    was not recorded). Returns {post id: path}."""
    paths = {}
    for post, image in zip(posts, images, strict=False):
        path = local_path(post[key], server)
        server.route(path, server.Reply(200, image, {"Content-Type": "image/jpeg"}))
        if post["id"] not in keep_md5:
            post["md5"] = md5(image)
        paths[post["id"]] = path
    return paths


def konachan_posts(realsites: Path, server) -> list[dict]:
    return recorded(realsites, KONACHAN_FILE, {"https://konachan.com": server.base})


def serve_konachan(server, posts: list[dict], tags: str = "", per_page: int = 100) -> list[str]:
    """Page 1 is the recording; page 2 is HAND-WRITTEN `[]`, Moebooru's answer past the last page."""
    pages = [f"/post.json?tags={quote_plus(tags)}&limit={per_page}&page={n}" for n in (1, 2)]
    server.route(pages[0], server.Reply(200, json.dumps(posts).encode(), JSON))
    server.route(pages[1], server.Reply(200, b"[]", JSON))
    return pages


def zerochan_post_for(realsites: Path, server, entry: dict, image: bytes) -> dict:
    """The recorded post when it is the entry's, else the recording with the entry's id, tags and primary
    tag put in and `full` built as the recorded one is; `full` on the server, `hash` of the served image."""
    post = recorded(realsites, ZEROCHAN_POST_FILE, {"https://static.zerochan.net": server.base})
    if post["id"] != entry["id"]:
        name = entry["tag"].replace(" ", ".")
        post.update(id=entry["id"], primary=entry["tag"], tags=entry["tags"], width=entry["width"])
        post.update(height=entry["height"], full=f"{server.base}/{quote_plus(name)}.full.{entry['id']}.jpg")
    post["hash"] = md5(image)
    return post


def serve_zerochan(server, realsites: Path, images: list[bytes], tags: str = "Female") -> dict:
    """The recorded listing at /<tags>?json&p=1&l=24, and a post and image for its first len(images)
    entries. Returns {"listing": path, "posts": [path], "files": [path], "fulls": [url]}."""
    listing = recorded(realsites, ZEROCHAN_LIST_FILE)
    paths: dict = {"listing": f"/{quote_plus(tags)}?json&p=1&l=24", "posts": [], "files": [], "fulls": []}
    server.route(paths["listing"], server.Reply(200, json.dumps(listing).encode(), JSON))
    for entry, image in zip(listing["items"], images, strict=False):
        post = zerochan_post_for(realsites, server, entry, image)
        paths["posts"].append(f"/{entry['id']}?json")
        paths["files"].append(local_path(post["full"], server))
        paths["fulls"].append(post["full"])
        server.route(paths["posts"][-1], server.Reply(200, json.dumps(post).encode(), JSON))
        server.route(paths["files"][-1], server.Reply(200, image, {"Content-Type": "image/jpeg"}))
    return paths


def manifest(data: Path) -> list[dict]:
    return read_jsonl(Layout(data).raw_manifest)


def by_post(rows: list[dict]) -> dict[int, dict]:
    return {row["meta"]["post_id"]: row for row in rows}


def site_skip(stderr: str, name: str) -> int:
    found = re.search(rf"{re.escape(name)}\s+(\d+)\n", stderr)
    return int(found.group(1)) if found else 0


# ---------------------------------------------------------------- one vocabulary of ratings
