"""Exit 6 is one rule for every site: every listing page answered, none could be read as that site's listing.

The listing answers here are HAND-MADE: each is what a site would answer if its API or markup
changed shape (JSON null, an object where a list belongs, a list of strings, an HTML page, an
errors object as Danbooru and AniList send them; the errors objects' shape follows the sites'
documented error replies: Danbooru `{"success": false, "message": ...}`, AniList GraphQL
`{"errors": [{"message": ...}], "data": null}`). getchu's case, on its real recorded listing,
is in test_crawler_sites.py.
"""

from __future__ import annotations

import json

import pytest

from pipeline.layout import Layout

SAFEBOORU_LISTING = "/index.php?page=dapi&s=post&q=index&json=1&tags=1girl&pid=0&limit=100"
HTML = b"<!doctype html><html><body><h1>We moved</h1></body></html>"
DANBOORU_ERROR = json.dumps({"success": False, "message": "The API has changed"}).encode()
ANILIST_ERROR = json.dumps(
    {"errors": [{"message": "Unknown field Page", "status": 400}], "data": None}
).encode()

CASES = {
    "danbooru null": ("danbooru", "/posts.json", b"null", "application/json"),
    "danbooru an errors object": ("danbooru", "/posts.json", DANBOORU_ERROR, "application/json"),
    "danbooru HTML": ("danbooru", "/posts.json", HTML, "text/html"),
    "safebooru an object": ("safebooru", SAFEBOORU_LISTING, b'{"post": []}', "application/json"),
    "safebooru strings": ("safebooru", SAFEBOORU_LISTING, b'["a", "b"]', "application/json"),
    "anilist an errors object": ("anilist", "/", ANILIST_ERROR, "application/json"),
    "anilist HTML": ("anilist", "/", HTML, "text/html"),
}


def _source(kind: str, base: str) -> dict:
    extra = {"anilist": {"rate": 0}, "danbooru": {"tags": "1girl"}, "safebooru": {"tags": "1girl"}}[kind]
    return {"kind": kind, "base_url": base, **extra}


@pytest.mark.parametrize("case", list(CASES))
def test_a_listing_that_answered_unreadably_ends_the_run_with_6(
    case, site_server, write_config, run_crawler, tmp_path
):
    kind, route, body, content_type = CASES[case]
    server = site_server()
    server.route(route, server.Reply(200, body, {"Content-Type": content_type}))
    data = tmp_path / "data"
    result = run_crawler(write_config([_source(kind, server.base)]), data)
    assert result.returncode == 6, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    # One line: the source, that it answered, and what came back (the page and why it is unreadable).
    assert last.startswith(f"crawler: source #1 ({kind}) answered but could not be read: "), last
    assert f"as a {kind} listing" in last and server.base in last and "unparseable" in last
    assert Layout(data).raw_manifest.is_file()


def test_an_empty_listing_or_an_unreachable_one_is_not_a_changed_site(
    site_server, write_config, run_crawler, tmp_path
):
    """No posts for these tags is a readable answer; a 503 is not an answer about the site's shape."""
    server = site_server()
    server.route("/posts.json", server.Reply(200, b"[]", {"Content-Type": "application/json"}))
    empty = run_crawler(write_config([_source("danbooru", server.base)]), tmp_path / "empty")
    assert empty.returncode == 0, empty.stderr

    down = site_server()
    down.route(SAFEBOORU_LISTING, down.Reply(503, b"busy"))
    config = write_config([_source("safebooru", down.base)], {"retries": 0})
    result = run_crawler(config, tmp_path / "down")
    # That page failed and is retried on the next run, as before: exit 0, never 6.
    assert result.returncode == 0 and "http_5xx" in result.stderr, result.stderr


def test_one_readable_listing_page_keeps_the_source_going(site_server, write_config, run_crawler, tmp_path):
    """A second page that is unreadable is that page's failure, not a site that changed."""
    server = site_server()
    server.route(
        "/posts.json?tags=1girl&limit=200",
        server.Reply(
            200, json.dumps([{"id": 10, "rating": "g"}]).encode(), {"Content-Type": "application/json"}
        ),
    )
    server.route(
        "/posts.json?tags=1girl&limit=200&page=b10", server.Reply(200, HTML, {"Content-Type": "text/html"})
    )
    result = run_crawler(write_config([_source("danbooru", server.base)]), tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "unparseable" in result.stderr
