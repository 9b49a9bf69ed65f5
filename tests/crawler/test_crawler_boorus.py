"""Gelbooru, Moebooru (Konachan) and Zerochan on their real recorded responses in ../shared/realsites.

Each site is served by a local SiteServer from the recorded bytes, changed only where a local
copy must be, each change named where it is made:
- image URLs are pointed at the local server (the recorded hosts are img3.gelbooru.com,
  konachan.com, static.zerochan.net);
- a post whose file is fetched and md5-checked has its md5 replaced by the md5 of the real
  image the server serves in its place (the recorded files themselves were not recorded); a
  post left with its recorded md5 is served other bytes on purpose, and must fail as md5_mismatch;
- Zerochan: only post 3914235 was recorded. Every other post is that recording with the
  listing entry's id, tags and primary tag put in, and its `full` URL built the way the
  recorded one is (`<Primary.Tag>.full.<id>.<ext>`).
Bodies that are written by hand (an exhausted search, a robots.txt, hostile shapes) say so.
Counts asserted are the ones on the recorded files (10 Gelbooru posts, 10 Konachan posts, 24
Zerochan entries).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from crawler.config import DEFAULT_USER_AGENT
from crawler.sites import gelbooru, moebooru, zerochan
from crawler.sites.ratings import LETTERS, MOEBOORU, WORDS, rating_of
from tests.helpers.boorus import (
    GELBOORU_FILE,
    GELBOORU_LISTING,
    GELBOORU_RATINGS,
    JSON,
    KONACHAN_CONVERTED,
    KONACHAN_FILE,
    ZEROCHAN_LIST_FILE,
    ZEROCHAN_POST_FILE,
    by_post,
    gelbooru_body,
    gelbooru_exhausted,
    konachan_posts,
    local_path,
    manifest,
    md5,
    recorded,
    serve_files,
    serve_gelbooru,
    serve_konachan,
    serve_zerochan,
    sha,
    site_skip,
)
from tests.helpers.sites import fetched


def test_each_sites_ratings_map_to_one_vocabulary(realsites):
    gel = json.loads((realsites / GELBOORU_FILE).read_bytes())["post"]
    assert {p["id"]: rating_of(p["rating"], WORDS) for p in gel} == GELBOORU_RATINGS
    kona = json.loads((realsites / KONACHAN_FILE).read_bytes())
    assert [rating_of(p["rating"], MOEBOORU) for p in kona] == ["s"] * 10  # Konachan's s is safe: read as s
    safe = json.loads((realsites / "safebooru" / "booruhs_safebooru_6077620_2025-09.json").read_bytes())
    assert rating_of(safe[0]["rating"], WORDS) == "g"  # Safebooru says "general"
    danbooru = json.loads((realsites / "danbooru" / "grabber_search_2020-07.json").read_bytes())
    assert {rating_of(p["rating"], LETTERS) for p in danbooru} == {"s"}
    # Values a site does not send are not guessed at.
    assert (
        rating_of("g", MOEBOORU) is None
        and rating_of("grimdark", WORDS) is None
        and rating_of(3, WORDS) is None
    )


# ---------------------------------------------------------------- gelbooru


def test_gelbooru_parser_on_the_real_response(realsites):
    raw = (realsites / GELBOORU_FILE).read_bytes()
    posts = gelbooru.parse_posts(fetched("https://gelbooru.com/index.php", raw))
    assert [p["id"] for p in posts] == list(GELBOORU_RATINGS)
    recorded_posts = json.loads(raw)["post"]
    assert [p["file_url"] for p in posts] == [p["file_url"] for p in recorded_posts]
    assert all(re.fullmatch(r"[0-9a-f]{32}", p["md5"]) for p in posts)
    assert (
        gelbooru.parse_posts(fetched("https://gelbooru.com/index.php", gelbooru_exhausted(json.loads(raw))))
        == []
    )


@pytest.mark.parametrize(
    ("ratings", "kept"),
    [(None, {"g", "s"}), (["q", "e"], {"q", "e"}), (["g"], {"g"})],
    ids=["default", "q-e", "g"],
)
def test_gelbooru_crawl_of_the_real_posts(
    ratings, kept, site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    body = gelbooru_body(realsites, server)
    posts = body["post"]
    mismatched = 8315396  # keeps its recorded md5, so the bytes served for it cannot match
    files = serve_files(server, posts, face_images[:10], "file_url", keep_md5={mismatched})
    first, below = serve_gelbooru(server, body)
    source = {"kind": "gelbooru", "base_url": server.base, **({"ratings": ratings} if ratings else {})}
    result = run_crawler(write_config([source]), tmp_path / "data")
    assert result.returncode == 0, result.stderr

    wanted = [p for p in posts if GELBOORU_RATINGS[p["id"]] in kept]
    stored = [p for p in wanted if p["id"] != mismatched]
    rows = by_post(manifest(tmp_path / "data"))
    assert set(rows) == {p["id"] for p in stored}
    for post in stored:
        assert rows[post["id"]]["url"] == post["file_url"]  # the recorded file_url, on the local server
        assert rows[post["id"]]["sha256"] == sha(face_images[posts.index(post)])
        assert rows[post["id"]]["meta"]["rating"] == GELBOORU_RATINGS[post["id"]]
        assert rows[post["id"]]["meta"]["verified"] == "md5"
    for post in posts:  # one request per wanted image, two for the mismatch, none for other ratings
        expected = 0 if post not in wanted else (2 if post["id"] == mismatched else 1)
        assert len(server.hits(files[post["id"]])) == expected, post["id"]
    assert len(server.hits(first)) == 1 and len(server.hits(below)) == 1
    for letter in {"g", "s", "q", "e"} - kept:
        count = sum(1 for r in GELBOORU_RATINGS.values() if r == letter)
        assert site_skip(result.stderr, f"gelbooru:rating_{letter}_skipped") == count
    assert ("md5_mismatch" in result.stderr) == ("s" in kept)


# ---------------------------------------------------------------- moebooru


def test_moebooru_parser_on_the_real_konachan_response(realsites):
    raw = (realsites / KONACHAN_FILE).read_bytes()
    posts = moebooru.parse_posts(fetched("https://konachan.net/post.json", raw))
    assert len(posts) == 10 and all(p["rating"] == "s" for p in posts)
    assert {p["id"] for p in posts if p["jpeg_url"] != p["file_url"]} == KONACHAN_CONVERTED
    assert all("/jpeg/" in p["jpeg_url"] for p in posts if p["id"] in KONACHAN_CONVERTED)


@pytest.mark.parametrize(
    ("variant", "ratings"),
    [("jpeg_url", None), ("file_url", None), ("jpeg_url", ["g"])],
    ids=["jpeg_url", "file_url", "general-only"],
)
def test_moebooru_crawl_of_the_real_konachan_posts(
    variant, ratings, site_server, realsites, face_images, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    posts = konachan_posts(realsites, server)
    originals = [p for p in posts if p["id"] not in KONACHAN_CONVERTED]
    converted = [p for p in posts if p["id"] in KONACHAN_CONVERTED]
    serve_files(server, originals, face_images[:8], "file_url")
    # The converted JPEGs are not checked against the md5 (it is the PNG original's): keep the recorded one.
    jpegs = serve_files(server, converted, face_images[8:10], "jpeg_url", keep_md5=KONACHAN_CONVERTED)
    pngs = {p["id"]: local_path(p["file_url"], server) for p in converted}
    for path in pngs.values():  # a real PNG, but not the recorded file: its md5 cannot match
        server.route(path, server.Reply(200, small_images[7], {"Content-Type": "image/png"}))
    pages = serve_konachan(server, posts)
    source = {"kind": "moebooru", "base_url": server.base, "variant": variant}
    result = run_crawler(
        write_config([source | ({"ratings": ratings} if ratings else {})]), tmp_path / "data"
    )
    assert result.returncode == 0, result.stderr

    rows = by_post(manifest(tmp_path / "data"))
    if ratings == ["g"]:  # Konachan's "safe" is not general
        assert rows == {} and site_skip(result.stderr, "moebooru:rating_s_skipped") == 10
        assert [h.path for h in server.hits() if not h.path.startswith("/post.json")] == ["/robots.txt"]
        return
    for post in originals:  # jpeg_url is the original itself for a JPEG: md5-checked either way
        assert rows[post["id"]]["url"] == post["file_url"] == post["jpeg_url"]
        assert rows[post["id"]]["meta"]["verified"] == "md5" and rows[post["id"]]["meta"]["rating"] == "s"
    if variant == "jpeg_url":
        assert len(rows) == 10
        for post in converted:
            assert rows[post["id"]]["url"] == post["jpeg_url"]
            assert rows[post["id"]]["meta"] == {
                "post_id": post["id"],
                "tags": post["tags"],
                "md5": post["md5"],
                "rating": "s",
                "variant": "jpeg",
                "verified": "decode",
            }
            assert len(server.hits(jpegs[post["id"]])) == 1
        assert not any(server.hits(path) for path in pngs.values())
    else:  # the PNG originals are fetched and checked against their recorded md5: once more, then failed
        assert len(rows) == 8
        assert all(len(server.hits(path)) == 2 for path in pngs.values())
        assert re.search(r"md5_mismatch\s+2\n", result.stderr), result.stderr
    assert [len(server.hits(page)) for page in pages] == [1, 1]


# ---------------------------------------------------------------- zerochan


def test_zerochan_parsers_on_the_real_listing_and_post(realsites):
    raw = (realsites / ZEROCHAN_LIST_FILE).read_bytes()
    listing = zerochan.parse_listing(fetched("https://www.zerochan.net/Female?json&p=1&l=24", raw))
    assert len(listing["entries"]) == 24 and listing["next"] is None
    assert [e["id"] for e in listing["entries"]] == [e["id"] for e in json.loads(raw)["items"]]
    assert not any(key in entry for entry in json.loads(raw)["items"] for key in ("full", "file_url", "hash"))
    post = zerochan.parse_post(
        fetched("https://www.zerochan.net/3914235?json", (realsites / ZEROCHAN_POST_FILE).read_bytes())
    )
    assert post["full"] == "https://static.zerochan.net/Cure.Parfait.full.3914235.png"
    assert post["hash"] == "aba2cfbd7f39be66edb6b39a8303b036" and post["primary"] == "Cure Parfait"


def test_zerochan_listing_with_a_bare_next_is_read(realsites):
    """HAND-CHANGED: the recorded listing with `next: true` written without quotes before its closing
    brace, the shape booru-rs strips from live answers (its zerochan client, "Ugly fix broken json")."""
    raw = (realsites / ZEROCHAN_LIST_FILE).read_bytes().rstrip()
    assert raw.endswith(b"}")
    body = raw[:-1].rstrip() + b",\r\n  next: true\r\n}"
    listing = zerochan.parse_listing(fetched("https://www.zerochan.net/Female?json&p=1&l=24", body))
    assert len(listing["entries"]) == 24 and listing["next"] is True


def test_zerochan_one_listing_one_post_and_one_image_per_image_at_the_rate(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    paths = serve_zerochan(server, realsites, face_images[:5])
    rate = 5.0
    source = {"kind": "zerochan", "base_url": server.base, "tags": ["Female"], "max_images": 5, "rate": rate}
    config = write_config([source])
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 0, result.stderr

    hits = server.hits()
    assert [h.path for h in hits][:2] == ["/robots.txt", paths["listing"]]
    assert sorted(h.path for h in hits[2:]) == sorted([*paths["posts"], *paths["files"]])
    assert len(server.hits(paths["listing"])) == 1
    assert [len(server.hits(p)) for p in paths["posts"]] == [1] * 5
    assert [len(server.hits(p)) for p in paths["files"]] == [1] * 5
    assert len(hits) == 1 + 1 + 5 + 5  # robots.txt, the listing, 5 posts, 5 images: nothing else
    # Every request, post requests included, is spaced by the source's rate (server-side clock).
    # Single gaps as the server logs them carry its own scheduling jitter (as in test_crawler_rate).
    gaps = [b.time - a.time for a, b in zip(hits, hits[1:], strict=False)]
    assert min(gaps) >= 0.75 / rate, gaps
    assert (len(hits) - 1) / (hits[-1].time - hits[0].time) <= rate * 1.05, gaps
    rows = by_post(manifest(data))
    entries = recorded(realsites, ZEROCHAN_LIST_FILE)["items"][:5]
    assert set(rows) == {e["id"] for e in entries}
    for entry, full, image in zip(entries, paths["fulls"], face_images[:5], strict=True):
        row = rows[entry["id"]]
        assert row["url"] == full and row["sha256"] == sha(image)
        assert row["page_url"] == f"{server.base}/{entry['id']}"
        assert row["meta"]["md5"] == md5(image) and row["meta"]["verified"] == "md5"
    assert rows[3914235]["url"] == f"{server.base}/Cure.Parfait.full.3914235.png"  # the recorded post's full
    # A second run asks nothing: the listing and every post are replayed from the crawl state.
    again = run_crawler(config, data)
    assert again.returncode == 0, again.stderr
    assert len(server.hits()) == len(hits)


def test_zerochan_refuses_the_default_user_agent(write_config, run_crawler, tmp_path):
    config = write_config(
        [{"kind": "zerochan", "base_url": "http://127.0.0.1:9"}], {"user_agent": DEFAULT_USER_AGENT}
    )
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "[[sources]] #1 (kind = 'zerochan')" in lines[0] and "Zerochan username" in lines[0]


# ---------------------------------------------------------------- robots.txt, for each new site

# HAND-WRITTEN robots.txt files: none of these sites' robots.txt is recorded in ../shared/realsites.
# Each disallows exactly the API path its source lists, the way Danbooru's real one disallows /*.json.
ROBOTS = {
    "gelbooru": ("User-agent: *\nDisallow: /index.php?page=dapi\n", "Disallow: /index.php?page=dapi"),
    "moebooru": ("User-agent: *\nDisallow: /post.json\n", "Disallow: /post.json"),
    "zerochan": ("User-agent: *\nDisallow: /*?json\n", "Disallow: /*?json"),
}


@pytest.mark.parametrize("kind", list(ROBOTS))
def test_each_new_sites_robots_txt_is_applied(kind, site_server, write_config, run_crawler, tmp_path):
    server = site_server()
    text, rule = ROBOTS[kind]
    server.route("/robots.txt", server.Reply(200, text.encode(), {"Content-Type": "text/plain"}))
    config = write_config([{"kind": kind, "base_url": server.base}])
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 6, result.stderr  # the only source stopped
    assert f"source #1 ({kind}) stopped" in result.stderr and rule in result.stderr
    assert [h.path for h in server.hits()] == ["/robots.txt"]  # not one disallowed URL asked for
    # obey_robots = false on the source (its own terms permitting) lists past it.
    off = write_config([{"kind": kind, "base_url": server.base, "obey_robots": False}], name="off.toml")
    result = run_crawler(off, data)
    assert result.returncode == 0, result.stderr  # its listing is not served here: a failed page, no stop
    assert "stopped" not in result.stderr
    assert len(server.hits()) == 2 and server.hits()[1].path != "/robots.txt"


# ---------------------------------------------------------------- hostile shapes, for each new site


def hostile_gelbooru(image_url: str) -> dict[str, tuple[Any, str]]:
    """HAND-WRITTEN bodies in the recorded dapi shape ({"@attributes": ..., "post": [...]}) with one thing
    wrong each; "ok" fields are the recorded first post's."""
    good = {"id": 5, "md5": "0" * 32, "file_url": image_url, "rating": "general", "tags": "1girl"}

    def with_(**change: Any) -> dict:
        return {"@attributes": {"limit": 100, "offset": 0, "count": 1}, "post": [{**good, **change}]}

    return {
        "a bare list": ([good], "unparseable"),
        "post a string": ({"post": "x"}, "unparseable"),
        "@attributes a list": ({"@attributes": [], "post": [good]}, "unparseable"),
        "post a list of nulls": ({"post": [None, None]}, "unparseable"),
        "md5 an integer": (with_(md5=123), "gelbooru:malformed_posts"),
        "md5 not hex": (with_(md5="z" * 32), "gelbooru:malformed_posts"),
        "id a string": (with_(id="five"), "gelbooru:malformed_posts"),
        "file_url a list": (with_(file_url=["x"]), "gelbooru:malformed_posts"),
        "rating a number": (with_(rating=3), "gelbooru:malformed_posts"),
        "rating an unknown word": (with_(rating="grimdark"), "gelbooru:rating_unknown_skipped"),
        "no md5": (with_(md5=None), "gelbooru:posts_without_file"),
    }


def hostile_moebooru(image_url: str) -> dict[str, tuple[Any, str]]:
    """HAND-WRITTEN post.json bodies in the recorded shape (a list of posts) with one thing wrong each."""
    good = {
        "id": 5,
        "md5": "0" * 32,
        "file_url": image_url,
        "jpeg_url": image_url,
        "rating": "s",
        "tags": "x",
    }
    return {
        "an object": ({"posts": [good]}, "unparseable"),
        "a list of strings": (["a", "b"], "unparseable"),
        "md5 not hex": ([{**good, "md5": "0" * 31 + "g"}], "moebooru:malformed_posts"),
        "jpeg_url a number": ([{**good, "jpeg_url": 7}], "moebooru:malformed_posts"),
        "id a float": ([{**good, "id": 5.5}], "moebooru:malformed_posts"),
        "rating a word": ([{**good, "rating": "safe-ish"}], "moebooru:rating_unknown_skipped"),
        "deleted: no file_url": (
            [{**good, "file_url": None, "jpeg_url": None}],
            "moebooru:posts_without_file",
        ),
    }


def hostile_zerochan(image_url: str) -> dict[str, tuple[Any, str]]:
    """HAND-WRITTEN: listings and posts in the recorded shapes ({"items": [...]}, the post object) with one
    thing wrong each. Values are (listing body, post body, outcome); a bad post fails only that post."""
    entry = {"id": 5, "tag": "Cure Parfait", "tags": ["Female"], "width": 900, "height": 900}
    post = {"id": 5, "full": image_url, "hash": "0" * 32, "primary": "Cure Parfait", "tags": ["Female"]}
    listing = {"items": [entry]}
    return {
        "listing a list": ([entry], post, "unparseable"),
        "items a string": ({"items": "x"}, post, "unparseable"),
        "entry id a string": ({"items": [{**entry, "id": "5"}]}, post, "zerochan:malformed_entries"),
        "post a list": (listing, [post], "pages_failed:unparseable"),
        "post without full": (listing, {**post, "full": None}, "zerochan:malformed_posts"),
        "hash an integer": (listing, {**post, "hash": 7}, "zerochan:malformed_posts"),
        "full not a URL": (listing, {**post, "full": "javascript:x"}, "zerochan:malformed_posts"),
        "another post's id": (listing, {**post, "id": 6}, "zerochan:malformed_posts"),
    }


HOSTILE = {"gelbooru": hostile_gelbooru, "moebooru": hostile_moebooru, "zerochan": hostile_zerochan}
CASES = [(kind, name) for kind, shapes in HOSTILE.items() for name in shapes("http://x.invalid/x.jpg")]


@pytest.mark.parametrize(("kind", "shape"), CASES, ids=[f"{k}: {s}" for k, s in CASES])
def test_hostile_shapes_of_each_new_site(
    kind, shape, site_server, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    image_url = server.route("/x.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    case = HOSTILE[kind](image_url)[shape]
    outcome = case[-1]
    if kind == "zerochan":
        server.route("/Solo?json&p=1&l=24", server.Reply(200, json.dumps(case[0]).encode(), JSON))
        server.route("/5?json", server.Reply(200, json.dumps(case[1]).encode(), JSON))
        server.route("/Solo?json&p=2&l=24", server.Reply(200, b'{"items": []}', JSON))
        source = {"kind": kind, "base_url": server.base, "tags": ["Solo"]}
    elif kind == "gelbooru":
        server.route(
            f"{GELBOORU_LISTING}&tags=1girl&pid=0&limit=100",
            server.Reply(200, json.dumps(case[0]).encode(), JSON),
        )
        server.route(
            f"{GELBOORU_LISTING}&tags=1girl+id%3A%3C5&pid=0&limit=100", server.Reply(200, b"{}", JSON)
        )
        source = {"kind": kind, "base_url": server.base, "tags": "1girl"}
    else:
        server.route(
            "/post.json?tags=1girl&limit=100&page=1", server.Reply(200, json.dumps(case[0]).encode(), JSON)
        )
        server.route("/post.json?tags=1girl&limit=100&page=2", server.Reply(200, b"[]", JSON))
        source = {"kind": kind, "base_url": server.base, "tags": "1girl"}
    result = run_crawler(write_config([source]), tmp_path / "data")
    assert "Traceback" not in result.stderr
    if outcome == "unparseable":  # a listing no such site answers: the site changed (exit 6), named
        assert result.returncode == 6, result.stderr
        assert "unparseable" in result.stderr and f"as a {kind} listing" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert (
            site_skip(result.stderr, outcome.split(":", 1)[1] if outcome.startswith("pages_") else outcome)
            == 1
        )
    assert not server.hits("/x.jpg")  # nothing of a broken record is fetched


def test_malformed_records_leave_the_good_ones_of_the_page(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    """The recorded Gelbooru page with two posts broken by hand (an integer md5, a list file_url): the other
    eight are read as always."""
    server = site_server()
    body = gelbooru_body(realsites, server)
    serve_files(server, body["post"], face_images[:10], "file_url")
    broken = copy.deepcopy(body)
    broken["post"][0]["md5"] = 123
    broken["post"][2]["file_url"] = [broken["post"][2]["file_url"]]
    serve_gelbooru(server, broken)
    result = run_crawler(
        write_config([{"kind": "gelbooru", "base_url": server.base, "ratings": ["g", "s", "q", "e"]}]),
        tmp_path / "data",
    )
    assert result.returncode == 0, result.stderr
    assert site_skip(result.stderr, "gelbooru:malformed_posts") == 2
    assert set(by_post(manifest(tmp_path / "data"))) == set(GELBOORU_RATINGS) - {8333903, 8329156}
