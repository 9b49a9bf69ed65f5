"""No download of a picture already stored: a post whose published md5 is in the store is linked, not fetched.

Every stored image records the md5 of its bytes beside its sha256, and every item the md5 its site
published for the post's original file. Sites are served from their real recorded responses
(tests/crawler/test_crawler_boorus.py and tests/helpers/realsites.py say what a local copy changes);
here one more change is made and named: posts of different sites are given the md5 of one and the
same served image, which is what "the same picture on several boorus" means.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote_plus

from pipeline.layout import Layout
from tests.helpers.boorus import (
    JSON,
    gelbooru_body,
    local_path,
    manifest,
    md5,
    serve_gelbooru,
    sha,
)
from tests.helpers.realsites import safebooru_posts

DAPI = "/index.php?page=dapi&s=post&q=index&json=1"
KNOWN = re.compile(r"known_md5 \(stored picture, not fetched\)\s+(\d+)\n")


def known_md5(stderr: str) -> int:
    found = KNOWN.search(stderr)
    assert found, stderr
    return int(found.group(1))


def serve_safebooru(server, realsites: Path, image: bytes) -> str:
    """The recorded Safebooru post (its hash set to the served image's md5) and Safebooru's real empty
    answer below it (an empty body); returns the image's path."""
    posts = safebooru_posts(realsites, server.base)
    posts[0]["hash"] = md5(image)
    path = f"/images/{posts[0]['directory']}/{posts[0]['image']}"
    server.route(path, server.Reply(200, image, {"Content-Type": "image/jpeg"}))
    server.route(
        f"{DAPI}&tags=1girl+solo&pid=0&limit=100", server.Reply(200, json.dumps(posts).encode(), JSON)
    )
    smallest = posts[0]["id"]
    below = f"{DAPI}&tags={quote_plus(f'1girl solo id:<{smallest}')}&pid=0&limit=100"
    server.route(below, server.Reply(200, b""))
    return path


def serve_one_gelbooru_post(server, realsites: Path, image: bytes, post_id: int = 8329156) -> str:
    """The recorded Gelbooru answer cut to one of its posts (a general one), whose md5 is set to the served
    image's; returns the image's path."""
    body = gelbooru_body(realsites, server)
    body["post"] = [post for post in body["post"] if post["id"] == post_id]
    body["post"][0]["md5"] = md5(image)
    path = local_path(body["post"][0]["file_url"], server)
    server.route(path, server.Reply(200, image, {"Content-Type": "image/jpeg"}))
    serve_gelbooru(server, body)
    return path


def serve_danbooru(server, make_danbooru_post, image: bytes, variant: bytes | None = None) -> tuple[str, str]:
    """A Danbooru post (the conftest's, shaped like the real API) whose original is `image`; with `variant`,
    a 720x720 variant large enough to be taken instead, served with those bytes. Returns (original, variant) paths."""
    post = make_danbooru_post(server, 900, image)
    original = local_path(post["file_url"], server)
    variant_path = "/data/720x720/variant900.jpg"
    if variant is not None:
        server.route(variant_path, server.Reply(200, variant, {"Content-Type": "image/jpeg"}))
        post["media_asset"]["variants"].insert(
            2,
            {
                "type": "720x720",
                "url": server.url(variant_path),
                "width": 576,
                "height": 720,
                "file_ext": "jpg",
            },
        )
    server.route(
        "/posts.json?tags=1girl+solo&limit=200", server.Reply(200, json.dumps([post]).encode(), JSON)
    )
    server.route("/posts.json?tags=1girl+solo&limit=200&page=b900", server.Reply(200, b"[]", JSON))
    return original, variant_path


def raw_files(data: Path) -> list[Path]:
    return [p for p in Layout(data).raw_dir.rglob("*") if p.is_file() and p.name != "manifest.jsonl"]


def test_safebooru_and_gelbooru_listing_the_same_md5_store_one_file_with_two_provenance_rows(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    safe, gel = site_server(), site_server("127.0.0.2")
    image = face_images[0]
    safe_path = serve_safebooru(safe, realsites, image)
    gel_path = serve_one_gelbooru_post(gel, realsites, image)
    config = write_config(
        [{"kind": "safebooru", "base_url": safe.base}, {"kind": "gelbooru", "base_url": gel.base}]
    )
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 0, result.stderr

    assert len(safe.hits(safe_path)) == 1 and not gel.hits(gel_path)  # one image request in all
    assert known_md5(result.stderr) == 1
    rows = manifest(data)
    assert len(rows) == 1 and len(raw_files(data)) == 1
    assert rows[0]["sha256"] == sha(image) and rows[0]["md5"] == md5(image)
    assert [(p["site"], p["url"]) for p in rows[0]["provenance"]] == [
        ("safebooru", safe.url(safe_path)),
        ("gelbooru", gel.url(gel_path)),
    ]
    assert rows[0]["provenance"][1]["meta"]["md5"] == md5(image)

    # A re-run asks for nothing and changes nothing: the link was stored like a download.
    before = Layout(data).raw_manifest.read_bytes()
    requests = len(safe.hits()) + len(gel.hits())
    again = run_crawler(config, data)
    assert again.returncode == 0, again.stderr
    assert known_md5(again.stderr) == 0 and re.search(r"already stored by an earlier run\s+2\n", again.stderr)
    assert len(safe.hits()) + len(gel.hits()) == requests
    assert Layout(data).raw_manifest.read_bytes() == before


def test_one_picture_from_three_sites_is_one_file_with_three_provenance_rows(
    site_server, realsites, face_images, make_danbooru_post, write_config, run_crawler, tmp_path
):
    dan, safe, gel = site_server(), site_server("127.0.0.2"), site_server("127.0.0.3")
    image = face_images[1]
    original, _ = serve_danbooru(dan, make_danbooru_post, image)
    safe_path = serve_safebooru(safe, realsites, image)
    gel_path = serve_one_gelbooru_post(gel, realsites, image)
    sources = [
        {"kind": "danbooru", "base_url": dan.base},
        {"kind": "safebooru", "base_url": safe.base},
        {"kind": "gelbooru", "base_url": gel.base},
    ]
    result = run_crawler(write_config(sources), tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = manifest(tmp_path / "data")
    assert len(rows) == 1 and [p["site"] for p in rows[0]["provenance"]] == [
        "danbooru",
        "safebooru",
        "gelbooru",
    ]
    assert len(dan.hits(original)) == 1 and not safe.hits(safe_path) and not gel.hits(gel_path)
    assert known_md5(result.stderr) == 2


def test_a_danbooru_variant_stands_for_its_original_on_other_sites(
    site_server, realsites, face_images, make_danbooru_post, write_config, run_crawler, tmp_path
):
    """Danbooru's md5 names the original, and a resized variant was fetched: the variant is what the store
    holds of that picture, so a Gelbooru post publishing the original's md5 is linked to it, not fetched."""
    dan, gel = site_server(), site_server("127.0.0.2")
    original_image, variant_image = face_images[2], face_images[3]
    original, variant = serve_danbooru(dan, make_danbooru_post, original_image, variant_image)
    gel_path = serve_one_gelbooru_post(gel, realsites, original_image)
    sources = [
        {"kind": "danbooru", "base_url": dan.base, "variant_min_side": 500},
        {"kind": "gelbooru", "base_url": gel.base},
    ]
    result = run_crawler(write_config(sources), tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = manifest(tmp_path / "data")
    assert len(rows) == 1 and rows[0]["sha256"] == sha(variant_image)
    assert rows[0]["meta"]["variant"] == "720x720" and rows[0]["meta"]["verified"] == "decode"
    assert rows[0]["md5"] == md5(variant_image)  # the stored bytes' own md5 ...
    # ... and the picture's, by Gelbooru
    assert rows[0]["provenance"][1]["meta"]["md5"] == md5(original_image)
    assert len(dan.hits(variant)) == 1 and not dan.hits(original) and not gel.hits(gel_path)
    assert known_md5(result.stderr) == 1

    # The other way round: Gelbooru's original first, then Danbooru's post of it fetches no variant.
    data = tmp_path / "reversed"
    result = run_crawler(write_config(sources[::-1], name="reversed.toml"), data)
    assert result.returncode == 0, result.stderr
    rows = manifest(data)
    assert len(rows) == 1 and rows[0]["sha256"] == sha(original_image)
    assert [p["site"] for p in rows[0]["provenance"]] == ["gelbooru", "danbooru"]
    assert len(dan.hits(variant)) == 1 and len(gel.hits(gel_path)) == 1


def test_bytes_from_any_source_are_known_by_their_md5(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    """A URL list publishes no md5, but the bytes it stored have one: a booru post of them is not fetched."""
    files, gel = site_server(), site_server("127.0.0.2")
    image = face_images[4]
    url = files.route("/art/one.jpg", files.Reply(200, image, {"Content-Type": "image/jpeg"}))
    (tmp_path / "urls.txt").write_text(url + "\n")
    gel_path = serve_one_gelbooru_post(gel, realsites, image)
    sources = [{"kind": "urls", "file": "urls.txt"}, {"kind": "gelbooru", "base_url": gel.base}]
    result = run_crawler(write_config(sources), tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert known_md5(result.stderr) == 1 and not gel.hits(gel_path)
    assert [p["site"] for p in manifest(tmp_path / "data")[0]["provenance"]] == ["urls", "gelbooru"]


def test_a_store_from_before_md5s_gets_them_and_is_then_known(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    files, gel = site_server(), site_server("127.0.0.2")
    image = face_images[5]
    url = files.route("/art/one.jpg", files.Reply(200, image, {"Content-Type": "image/jpeg"}))
    (tmp_path / "urls.txt").write_text(url + "\n")
    data = tmp_path / "data"
    urls_only = write_config([{"kind": "urls", "file": "urls.txt"}], name="urls.toml")
    assert run_crawler(urls_only, data).returncode == 0
    with sqlite3.connect(Layout(data).crawl_state) as db:  # the state as a crawler before md5s wrote it
        db.execute("DROP INDEX images_by_md5")
        db.execute("ALTER TABLE images DROP COLUMN md5")

    gel_path = serve_one_gelbooru_post(gel, realsites, image)
    both = write_config([{"kind": "urls", "file": "urls.txt"}, {"kind": "gelbooru", "base_url": gel.base}])
    result = run_crawler(both, data)
    assert result.returncode == 0, result.stderr
    assert known_md5(result.stderr) == 1 and not gel.hits(gel_path)
    with sqlite3.connect(Layout(data).crawl_state) as db:
        assert db.execute("SELECT md5 FROM images").fetchall() == [(hashlib.md5(image).hexdigest(),)]


def test_a_resumed_crawl_links_exactly_as_an_uninterrupted_one(
    site_server, realsites, face_images, write_config, run_crawler, tmp_path
):
    """Run in two parts (the second source added by a later run) or at once: the same manifest, apart from
    fetched_at, and nothing stored or requested twice."""
    safe, gel = site_server(), site_server("127.0.0.2")
    image = face_images[6]
    safe_path = serve_safebooru(safe, realsites, image)
    gel_path = serve_one_gelbooru_post(gel, realsites, image)
    sources = [{"kind": "safebooru", "base_url": safe.base}, {"kind": "gelbooru", "base_url": gel.base}]
    at_once, in_parts = tmp_path / "at-once", tmp_path / "in-parts"
    assert run_crawler(write_config(sources), at_once).returncode == 0
    assert run_crawler(write_config(sources[:1], name="first.toml"), in_parts).returncode == 0
    assert run_crawler(write_config(sources, name="both.toml"), in_parts).returncode == 0

    def without_times(data: Path) -> list[dict]:
        rows = manifest(data)
        for row in rows:
            row.pop("fetched_at")
            for entry in row["provenance"]:
                entry.pop("fetched_at")
        return rows

    assert without_times(at_once) == without_times(in_parts)
    assert len(raw_files(in_parts)) == 1
    assert len(safe.hits(safe_path)) == 2 and not gel.hits(gel_path)  # one per data dir
