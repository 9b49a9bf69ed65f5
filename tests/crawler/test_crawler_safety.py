"""Politeness and safety: retries, bad bodies, redirects, robots, md5, config and network errors."""

from __future__ import annotations

import io
import socket
import sqlite3
from pathlib import Path

from PIL import Image

from crawler import config as crawler_config
from crawler.engine import crawl
from pipeline.atomic import read_jsonl
from pipeline.config import read_config
from pipeline.layout import Layout
from tests.helpers.raw import sha256_of as sha


def failures(data: Path) -> dict[str, str]:
    """{url: reason} of the failed items, straight from the crawl state."""
    with sqlite3.connect(Layout(data).crawl_state) as conn:
        return dict(conn.execute("SELECT url, reason FROM items WHERE status = 'failed'").fetchall())


def crawl_urls(
    tmp_path: Path,
    write_config,
    urls: list[str],
    crawler: dict | None = None,
    retry_failed: bool = False,
    **source,
):
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt", **source}], crawler)
    settings = crawler_config.load(read_config(config))
    return crawl(settings, tmp_path / "data", progress=False, retry_failed=retry_failed)


def stored_shas(data: Path) -> set[str]:
    return {r["sha256"] for r in read_jsonl(Layout(data).raw_manifest)}


def test_retries_429_retry_after_503_and_connection_reset(site_server, small_images, write_config, tmp_path):
    server = site_server()
    R = server.Reply
    jpeg = {"Content-Type": "image/jpeg"}
    urls = [
        server.route("/a.jpg", R(429, b"slow down", {"Retry-After": "1"}), R(200, small_images[0], jpeg)),
        server.route("/b.jpg", R(503, b"busy"), R(503, b"busy"), R(200, small_images[1], jpeg)),
        server.route("/c.jpg", R(action="reset"), R(200, small_images[2], jpeg)),
        server.route("/always-503.jpg", R(503, b"down")),
    ]
    report = crawl_urls(tmp_path, write_config, urls, {"retries": 2})
    assert stored_shas(tmp_path / "data") == {sha(small_images[i]) for i in range(3)}
    a_hits = server.hits("/a.jpg")
    assert len(a_hits) == 2 and a_hits[1].time - a_hits[0].time >= 0.95  # Retry-After: 1 honoured
    assert len(server.hits("/b.jpg")) == 3 and len(server.hits("/c.jpg")) == 2
    assert len(server.hits("/always-503.jpg")) == 3  # bounded: first try + 2 retries
    assert failures(tmp_path / "data") == {urls[3]: "http_5xx"}
    assert report.failed == {"http_5xx": 1}

    # A transient failure is retried on the next run; stored images are not fetched again.
    server.route("/always-503.jpg", R(200, small_images[3], jpeg))
    crawl_urls(tmp_path, write_config, urls)
    assert sha(small_images[3]) in stored_shas(tmp_path / "data")
    assert len(server.hits("/a.jpg")) == 2 and len(server.hits("/b.jpg")) == 3


def test_bad_bodies_are_rejected_with_reasons(site_server, small_images, bomb, write_config, tmp_path):
    server = site_server()
    R = server.Reply
    jpeg = {"Content-Type": "image/jpeg"}
    big = io.BytesIO()
    Image.new("RGB", (1200, 1200)).save(big, "PNG")  # compresses to a few KB...
    noise = io.BytesIO()
    Image.effect_noise((600, 600), 80).convert("RGB").save(noise, "PNG")  # ...this one does not
    urls = {
        "truncated_jpeg": server.route(
            "/truncated.jpg", R(200, small_images[0][: len(small_images[0]) * 2 // 3], jpeg)
        ),
        "html": server.route(
            "/login.jpg", R(200, b"<!DOCTYPE html><html><body>Please log in</body></html>", jpeg)
        ),
        "oversize": server.route("/huge.png", R(200, noise.getvalue(), {"Content-Type": "image/png"})),
        "bomb": server.route("/bomb.png", R(200, bomb, {"Content-Type": "image/png"})),
        "cut_transfer": server.route("/cut.jpg", R(200, small_images[1], jpeg, action="truncate")),
        "not_found": server.url("/missing.jpg"),
        "good": server.route("/good.jpg", R(200, small_images[2], jpeg)),
    }
    max_bytes = len(noise.getvalue()) - 1
    assert max_bytes > max(len(b) for b in small_images[:3])
    crawl_urls(tmp_path, write_config, list(urls.values()), {"max_bytes": max_bytes, "retries": 1})
    reasons = failures(tmp_path / "data")
    assert reasons == {
        urls["truncated_jpeg"]: "truncated_image",
        urls["html"]: "html",
        urls["oversize"]: "too_large",
        urls["bomb"]: "decompression_bomb",
        urls["cut_transfer"]: "truncated",
        urls["not_found"]: "http_404",
    }
    assert stored_shas(tmp_path / "data") == {sha(small_images[2])}
    assert len(server.hits("/cut.jpg")) == 2  # a cut transfer is retried
    assert len(server.hits("/missing.jpg")) == 1  # a 404 is not
    assert not list(Layout(tmp_path / "data").raw_dir.rglob(".tmp-*"))


def test_redirects_only_within_allowed_hosts(site_server, small_images, write_config, tmp_path):
    server = site_server()
    other = site_server("127.0.0.2")
    R = server.Reply
    other.route("/elsewhere.jpg", R(200, small_images[0], {"Content-Type": "image/jpeg"}))
    other.route("/cdn.jpg", R(200, small_images[1], {"Content-Type": "image/jpeg"}))
    server.route("/local-target.jpg", R(200, small_images[2], {"Content-Type": "image/jpeg"}))
    urls = [
        server.route("/off.jpg", R(302, b"", {"Location": other.url("/elsewhere.jpg")})),
        server.route("/on.jpg", R(301, b"", {"Location": "/local-target.jpg"})),
        server.route("/loop.jpg", R(302, b"", {"Location": "/loop.jpg"})),
    ]
    crawl_urls(tmp_path, write_config, urls)
    assert failures(tmp_path / "data") == {urls[0]: "offhost_redirect", urls[2]: "too_many_redirects"}
    assert not other.hits()  # the off-host target was never contacted
    assert stored_shas(tmp_path / "data") == {sha(small_images[2])}

    # A configured CDN host is followed; on a port other than the scheme's default only when the entry names it.
    cdn_url = server.route("/to-cdn.jpg", R(302, b"", {"Location": other.url("/cdn.jpg")}))
    crawl_urls(tmp_path, write_config, [cdn_url], {"cdn_hosts": ["127.0.0.2"]})
    assert sha(small_images[1]) not in stored_shas(tmp_path / "data")
    crawl_urls(
        tmp_path, write_config, [cdn_url], {"cdn_hosts": [f"127.0.0.2:{other.port}"]}, retry_failed=True
    )
    assert sha(small_images[1]) in stored_shas(tmp_path / "data")


def test_redirect_to_another_port_of_the_same_host_is_off_origin(
    site_server, small_images, write_config, tmp_path
):
    server, same_host = site_server(), site_server()
    R = server.Reply
    same_host.route("/other-port.jpg", R(200, small_images[0], {"Content-Type": "image/jpeg"}))
    url = server.route("/hop.jpg", R(302, b"", {"Location": same_host.url("/other-port.jpg")}))
    crawl_urls(tmp_path, write_config, [url])
    assert failures(tmp_path / "data") == {url: "offhost_redirect"}
    assert not same_host.hits()


def test_robots_disallow_is_skipped_and_counted(
    site_server, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    R = server.Reply
    server.route(
        "/robots.txt",
        R(200, b"User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n", {"Content-Type": "text/plain"}),
    )
    server.route("/private/a.jpg", R(200, small_images[0], {"Content-Type": "image/jpeg"}))
    server.route("/public/b.jpg", R(200, small_images[1], {"Content-Type": "image/jpeg"}))
    server.route("/public/c.jpg", R(200, small_images[2], {"Content-Type": "image/jpeg"}))
    (tmp_path / "urls.txt").write_text(
        "\n".join(server.url(p) for p in ("/private/a.jpg", "/public/b.jpg", "/public/c.jpg"))
    )
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"workers": 4})
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert not server.hits("/private/a.jpg")
    assert len(server.hits("/robots.txt")) == 1  # once per host, however many threads
    assert "skipped by robots.txt                     1" in result.stderr
    assert stored_shas(tmp_path / "data") == {sha(small_images[1]), sha(small_images[2])}
    times = sorted(h.time for h in server.hits())  # rate_per_host is off here: Crawl-delay alone spaces them
    assert len(times) == 3 and min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.9
    ua = server.hits("/public/b.jpg")[0].headers["User-Agent"]
    assert ua.startswith("anime-face-pipeline-tests/0.1") and "tests@example.invalid" in ua


def test_same_image_under_two_urls_is_stored_once(site_server, small_images, write_config, tmp_path):
    server = site_server()
    R = server.Reply
    urls = [
        server.route(f"/copy{n}.jpg", R(200, small_images[0], {"Content-Type": "image/jpeg"})) for n in (1, 2)
    ]
    report = crawl_urls(tmp_path, write_config, urls)
    rows = read_jsonl(Layout(tmp_path / "data").raw_manifest)
    assert len(rows) == 1 and [p["url"] for p in rows[0]["provenance"]] == urls
    assert len(list(Layout(tmp_path / "data").raw_dir.rglob("*.jpg"))) == 1
    assert report.counts["stored"] == 1 and report.counts["duplicates"] == 1


def test_config_errors_are_one_clear_line(write_config, run_crawler, tmp_path):
    config = write_config([{"kind": "getchu", "base_url": "http://127.0.0.1:9", "tags": "1girl"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2
    assert "[[sources]] #1 (kind = 'getchu')" in result.stderr and "tags" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    config = write_config([{"kind": "danbooru", "base_url": "http://127.0.0.1:9", "tags": "a b c"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2 and "2 tags" in result.stderr

    config = write_config([{"kind": "folder", "path": "no-such-dir"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2 and "no-such-dir" in result.stderr and "Traceback" not in result.stderr

    config = write_config([{"kind": "urls", "file": "x.txt"}], {"rate_per_hots": 1})
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2 and "rate_per_hots" in result.stderr


def test_no_network_gives_one_clear_line(write_config, run_crawler, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connection refused
    config = write_config(
        [
            {
                "kind": "getchu",
                "base_url": f"http://127.0.0.1:{port}",
                "years": [2010, 2011],
                "months": [1, 2, 3],
            }
        ]
    )
    result = run_crawler(config, tmp_path / "data", timeout=60)
    assert result.returncode == 3
    assert "No network?" in result.stderr and "Traceback" not in result.stderr


def test_retry_after_http_date_and_exhausted_rate_budget(site_server, small_images, write_config, tmp_path):
    import email.utils
    import time

    server = site_server()
    R = server.Reply
    jpeg = {"Content-Type": "image/jpeg"}

    def busy(hit):
        return R(429, b"", {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)})

    def budget_spent(hit):
        return R(
            200,
            small_images[1],
            {**jpeg, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 2)},
        )

    urls = [
        server.route("/date.jpg", busy, R(200, small_images[0], jpeg)),
        server.route("/budget.jpg", budget_spent),
        server.route("/after.jpg", R(200, small_images[2], jpeg)),
    ]
    crawl_urls(tmp_path, write_config, urls, {"workers": 1})
    assert stored_shas(tmp_path / "data") == {sha(small_images[i]) for i in range(3)}
    date_hits = server.hits("/date.jpg")
    assert date_hits[1].time - date_hits[0].time >= 0.9  # an HTTP-date Retry-After (1 s resolution) honoured
    # held until the reset
    assert server.hits("/after.jpg")[0].time - server.hits("/budget.jpg")[0].time >= 0.9


def test_max_images_cap_and_retry_failed(site_server, small_images, write_config, run_crawler, tmp_path):
    server = site_server()
    R = server.Reply
    jpeg = {"Content-Type": "image/jpeg"}
    urls = [server.url("/gone.jpg")] + [
        server.route(f"/ok{n}.jpg", R(200, small_images[n], jpeg)) for n in range(4)
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt", "max_images": 3}])
    data = tmp_path / "data"
    assert run_crawler(config, data).returncode == 0
    assert stored_shas(data) == {
        sha(small_images[0]),
        sha(small_images[1]),
    }  # the first 3 listed, one of them a 404
    assert not server.hits("/ok2.jpg") and not server.hits("/ok3.jpg")

    server.route("/gone.jpg", R(200, small_images[5], jpeg))
    again = run_crawler(config, data)
    assert "http_404  1" in again.stderr and len(server.hits("/gone.jpg")) == 1  # a 404 is final...
    retried = run_crawler(config, data, "--retry-failed")
    assert retried.returncode == 0 and len(server.hits("/gone.jpg")) == 2  # ...until asked to retry
    assert sha(small_images[5]) in stored_shas(data)
