"""Reliability: no single bad response, URL or setting stops, hangs or corrupts a crawl.

Each fault is a route of a raw-socket server on 127.0.0.1 (tests/crawler/hostile.py) or a
small SiteServer route; the crawler runs through its CLI with small deadlines from the
config so the suite stays fast.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout
from tests.helpers.cli import start_stage
from tests.helpers.hostile import FAULTS, HostileServer, image

FAST_DEADLINE = {
    "request_deadline": 1.5,
    "read_timeout": 1,
    "connect_timeout": 1,
    "retries": 2,
    "backoff": 0.05,
}


@pytest.fixture
def hostile(small_images):
    servers = []

    def start_hostile(extra: dict | None = None) -> HostileServer:
        routes = {path: handler for path, (handler, _) in FAULTS.items()}
        routes.update({f"/good{n}.jpg": image(data) for n, data in enumerate(small_images[:4])})
        routes.update(extra or {})
        server = HostileServer(routes)
        servers.append(server)
        return server

    yield start_hostile
    for server in servers:
        server.stop()


def failed_items(data: Path) -> dict[str, str]:
    with sqlite3.connect(Layout(data).crawl_state) as db:
        return dict(db.execute("SELECT url, reason FROM items WHERE status = 'failed'"))


def test_worst_hostile_server_crawl_finishes_with_every_good_url_stored(
    hostile, small_images, write_config, run_crawler, tmp_path
):
    server = hostile()
    good = [server.url(f"/good{n}.jpg") for n in range(4)]
    bad = {server.url(path): reason for path, (_, reason) in FAULTS.items()}
    bad[f"http://127.0.0.1:{server.port}/a b.jpg"] = "bad_url"  # a urls line with a space
    bad["http://127.0.0.1:99999/x.jpg"] = "bad_url"  # a urls line with a bad port
    bad["http://[::1/x.jpg"] = "bad_url"
    lines = [good[0], *list(bad)[:6], good[1], *list(bad)[6:], good[2], good[3]]
    (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], FAST_DEADLINE)
    data = tmp_path / "data"
    started = time.monotonic()
    result = run_crawler(config, data, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert {row["url"] for row in read_jsonl(Layout(data).raw_manifest)} == set(good)
    assert failed_items(data) == bad
    # One deadline per slow URL, not one per retry: three trickling routes, 1.5 s each, plus slack.
    assert elapsed < 60, elapsed
    assert len([h for h in server.hits if h == "/slow-body.jpg"]) == 1

    # The next run does not die at the same place either, and stores nothing twice.
    again = run_crawler(config, data, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(read_jsonl(Layout(data).raw_manifest)) == 4


SHAPES = {
    # a danbooru /posts.json body -> what the crawler must make of it
    "list of strings": (["a", "b"], "unparseable"),
    "list of nulls": ([None, None], "unparseable"),
    "an object": ({"posts": []}, "unparseable"),
    "a string": ("posts", "unparseable"),
    "integer md5": ([{"id": 5, "md5": 123, "file_url": "/data/x.jpg", "rating": "g"}], "malformed_posts"),
    "media_asset a string": (
        [{"id": 5, "md5": "0" * 32, "file_url": "/data/x.jpg", "rating": "g", "media_asset": "variants"}],
        "malformed_posts",
    ),
    "variants of strings": (
        [
            {
                "id": 5,
                "md5": "0" * 32,
                "file_url": "/data/x.jpg",
                "rating": "g",
                "media_asset": {"variants": ["a", 1]},
            }
        ],
        "fetched",
    ),
    "id a string": (
        [{"id": "five", "md5": "0" * 32, "file_url": "/data/x.jpg", "rating": "g"}],
        "malformed_posts",
    ),
    "file_url a list": ([{"id": 5, "md5": "0" * 32, "file_url": ["x"], "rating": "g"}], "malformed_posts"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_danbooru_answers_of_the_wrong_shape(shape, site_server, write_config, run_crawler, tmp_path):
    body, outcome = SHAPES[shape]
    server = site_server()
    text = json.dumps(body).replace('"/data/x.jpg"', json.dumps(server.url("/data/x.jpg")))
    server.route("/posts.json", server.Reply(200, text.encode(), {"Content-Type": "application/json"}))
    config = write_config([{"kind": "danbooru", "base_url": server.base, "tags": "1girl"}])
    result = run_crawler(config, tmp_path / "data")
    # A listing that answered in a shape no Danbooru listing has: the site changed (exit 6).
    assert result.returncode == (6 if outcome == "unparseable" else 0), result.stderr
    assert "Traceback" not in result.stderr
    if outcome == "unparseable":
        assert f"{server.base}/posts.json" in result.stderr and "unparseable" in result.stderr
    elif outcome == "malformed_posts":
        assert re.search(r"danbooru:malformed_posts\s+1\n", result.stderr), result.stderr
    else:  # the post is fine, only its variants are not: the original is fetched
        assert server.hits("/data/x.jpg")


def test_json_nested_200000_deep_is_unparseable(site_server, write_config, run_crawler, tmp_path):
    server = site_server()
    deep = b"[" * 200_000 + b"]" * 200_000
    base = "/index.php?page=dapi&s=post&q=index&json=1"
    server.route(
        f"{base}&tags=1girl&pid=0&limit=100", server.Reply(200, deep, {"Content-Type": "application/json"})
    )
    config = write_config([{"kind": "safebooru", "base_url": server.base, "tags": "1girl"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 6, result.stderr
    assert "unparseable" in result.stderr and "nested too deeply" in result.stderr


@pytest.mark.parametrize(
    "body",
    [[1, 2], {"data": None}, {"data": {"Page": {"pageInfo": {"hasNextPage": True}, "characters": "x"}}}],
    ids=["a list", "data null", "characters a string"],
)
def test_anilist_answers_of_the_wrong_shape(body, site_server, write_config, run_crawler, tmp_path):
    server = site_server()
    server.route("/", server.Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"}))
    config = write_config([{"kind": "anilist", "base_url": server.base, "rate": 0}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 6, result.stderr
    assert "unparseable" in result.stderr and "Traceback" not in result.stderr


def test_endless_listings_end_after_stale_pages(site_server, write_config, run_crawler, tmp_path):
    server = site_server()
    pages = []

    def graphql(hit):
        pages.append(hit)
        body = {"data": {"Page": {"pageInfo": {"hasNextPage": True}, "characters": []}}}
        return server.Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    server.route("/", graphql)

    def hidden(hit):
        before = int(re.search(r"page=b(\d+)", hit.path).group(1)) if "page=b" in hit.path else 10**6
        posts = [{"id": before - n, "rating": "g"} for n in range(1, 4)]  # hidden: no file_url, no md5
        return server.Reply(200, json.dumps(posts).encode(), {"Content-Type": "application/json"})

    server.route("/posts.json", hidden)
    config = write_config(
        [
            {"kind": "anilist", "base_url": server.base, "rate": 0},
            {"kind": "danbooru", "base_url": server.base, "tags": "1girl"},
        ],
        {"max_stale_pages": 3},
    )
    result = run_crawler(config, tmp_path / "data", timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(pages) == 3
    assert (
        len(server.hits("/posts.json")) + len([h for h in server.hits() if h.path.startswith("/posts.json?")])
        >= 3
    )
    assert len([h for h in server.hits() if h.path.startswith("/posts.json")]) == 3
    assert "anilist:listing_stalled" in result.stderr and "danbooru:listing_stalled" in result.stderr


def test_crawl_delay_beyond_the_cap_skips_the_host(
    site_server, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    server.route(
        "/robots.txt",
        server.Reply(200, b"User-agent: *\nCrawl-delay: 100000\n", {"Content-Type": "text/plain"}),
    )
    url = server.route("/a.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    (tmp_path / "urls.txt").write_text(url + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"max_crawl_delay": 30})
    started = time.monotonic()
    result = run_crawler(config, tmp_path / "data", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 0, result.stderr
    assert "Crawl-delay: 100000" in result.stderr and "max_crawl_delay" in result.stderr
    assert failed_items(tmp_path / "data") == {url: "crawl_delay_too_long"}
    assert not server.hits("/a.jpg")


def test_robots_redirect_is_followed_and_a_huge_robots_is_read(
    site_server, small_images, write_config, run_crawler, tmp_path
):
    server, robots_host = site_server(), site_server("127.0.0.2")
    server.route("/robots.txt", server.Reply(301, b"", {"Location": robots_host.url("/robots-file.txt")}))
    robots_host.route(
        "/robots-file.txt",
        server.Reply(200, b"User-agent: *\nDisallow: /private/\n", {"Content-Type": "text/plain"}),
    )
    big, huge_robots = (
        site_server("127.0.0.3"),
        b"User-agent: *\nDisallow: /private/\n" + b"# padding\n" * 60_000,
    )
    big.route("/robots.txt", server.Reply(200, huge_robots, {"Content-Type": "text/plain"}))
    urls = [
        server.route("/ok.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"})),
        server.route("/private/no.jpg", server.Reply(200, small_images[1], {"Content-Type": "image/jpeg"})),
        big.route("/ok.jpg", big.Reply(200, small_images[2], {"Content-Type": "image/jpeg"})),
        big.route("/private/no.jpg", big.Reply(200, small_images[3], {"Content-Type": "image/jpeg"})),
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert len(huge_robots) > 512_000
    assert {r["url"] for r in read_jsonl(Layout(tmp_path / "data").raw_manifest)} == {urls[0], urls[2]}
    assert failed_items(tmp_path / "data") == {urls[1]: "robots_disallowed", urls[3]: "robots_disallowed"}


@pytest.mark.parametrize("retry_after", ["-5", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_unusable_retry_after_falls_back_to_backoff(
    retry_after, site_server, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    R = server.Reply
    url = server.route(
        "/busy.jpg",
        R(503, b"", {"Retry-After": retry_after}),
        R(200, small_images[0], {"Content-Type": "image/jpeg"}),
    )
    (tmp_path / "urls.txt").write_text(url + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"backoff": 0.4, "retries": 2})
    result = run_crawler(config, tmp_path / "data", timeout=60)
    assert result.returncode == 0, result.stderr
    first, second = server.hits("/busy.jpg")
    assert second.time - first.time >= 0.4  # the backoff, not an immediate retry


def test_binary_urls_file_is_a_clear_error(write_config, run_crawler, tmp_path, small_images):
    (tmp_path / "urls.txt").write_bytes(small_images[0])
    config = write_config([{"kind": "urls", "file": "urls.txt"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert "not a UTF-8 text file of URLs" in result.stderr or "binary file" in result.stderr
    assert "No network" not in result.stderr


def test_sigterm_on_a_first_crawl_leaves_a_manifest(site_server, face_images, write_config, tmp_path):
    server = site_server(latency=0.2)
    urls = [
        server.route(f"/f{n}.jpg", server.Reply(200, face_images[n], {"Content-Type": "image/jpeg"}))
        for n in range(20)
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"workers": 1})
    data = tmp_path / "data"
    process = start_stage("crawler", data, config, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(data.rglob("*.jpg")) if data.exists() else []) < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130, process.stderr.read()
    assert 2 <= len(read_jsonl(Layout(data).raw_manifest)) < 20
