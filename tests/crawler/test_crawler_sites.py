"""Each site module against a local server serving realistic responses, through the CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout, rel_raw
from tests.helpers import realsites as recorded
from tests.helpers.raw import sha256_of as sha


def raw_rows(data: Path) -> list[dict]:
    return read_jsonl(Layout(data).raw_manifest)


def test_getchu_real_listings_redirect_age_gate_and_character_art_only(
    site_server, getchu, small_images, write_config, run_crawler, tmp_path
):
    """Real recorded getchu pages (a 2014 listing and the 2026 /item/ page; the 2026 listing layout
    is hand-made, see tests/helpers/realsites.py), through the soft.phtml -> /item/N/ redirect and the age gate."""
    server = site_server()
    getchu(server, {1001: small_images[0:2], 1002: small_images[2:3]}, year=2014, month=12, layout="2014_12")
    getchu(server, {2001: small_images[3:5]}, year=2026, month=7, layout="2026")
    config = write_config(
        [
            {
                "kind": "getchu",
                "base_url": server.base,
                "years": [2014, 2026],
                "months": [7, 12],
                "genres": ["pc_soft"],
            }
        ]
    )
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr

    rows = raw_rows(tmp_path / "data")
    assert sorted(r["sha256"] for r in rows) == sorted(sha(b) for b in small_images[:5])
    by_sha = {r["sha256"]: r for r in rows}
    first, standing = by_sha[sha(small_images[0])], by_sha[sha(small_images[1])]
    assert first["site"] == "getchu"
    assert first["url"] == server.url("/brandnew/1001/c1001chara1.jpg")
    # behind the クリックで拡大 thumbnail
    assert standing["url"] == server.url("/brandnew/1001/c1001charab1.jpg")
    assert first["page_url"] == server.url("/item/1001/")  # where the redirect led
    assert first["meta"] == {
        "product_id": "1001",
        "title": "マガルミナ 通常版",
        "image": "character",
        "character": "福留大和",
        "reading": "ふくとめ やまと",
    }
    assert standing["meta"]["image"] == "standing" and standing["meta"]["character"] == "福留大和"
    assert by_sha[sha(small_images[2])]["meta"]["character"] == "福留大和"
    assert by_sha[sha(small_images[4])]["meta"] == {
        "product_id": "2001",
        "title": "マガルミナ 通常版",
        "image": "standing",
        "character": "福留大和",
        "reading": "ふくとめ やまと",
    }
    for row in rows:
        assert (tmp_path / "data" / row["path"]).read_bytes()[:4] in (
            b"\xff\xd8\xff\xe0",
            b"\xff\xd8\xff\xe1",
            b"\xff\xd8\xff\xdb",
            b"\x89PNG",
        )
        assert row["path"] == rel_raw(row["sha256"], "png" if row["format"] == "png" else "jpg")
        assert row["bytes"] == (tmp_path / "data" / row["path"]).stat().st_size
        assert row["width"] > 0 and row["height"] > 0
        assert row["fetched_at"].endswith("Z")

    # The age gate was passed with the cookie on the redirect's target, and only character art was
    # fetched: not the package images, not the related character-song CD whose alt says キャラ.
    product_hits = [h for h in server.hits() if h.path.startswith(("/soft.phtml", "/item/"))]
    assert {h.path for h in product_hits} == {
        "/soft.phtml?id=1001",
        "/item/1001/",
        "/soft.phtml?id=1002",
        "/item/1002/",
        "/soft.phtml?id=2001",
        "/item/2001/",
    }
    assert all("getchu_adalt_flag=getchu.com" in h.headers.get("Cookie", "") for h in product_hits)
    assert not [h for h in server.hits() if h.path.startswith("/php/attestation.html")]
    assert {h.path for h in server.hits() if h.path.startswith("/brandnew/")} == {
        "/brandnew/1001/c1001chara1.jpg",
        "/brandnew/1001/c1001charab1.jpg",
        "/brandnew/1002/c1002chara1.jpg",
        "/brandnew/2001/c2001chara1.jpg",
        "/brandnew/2001/c2001charab1.jpg",
    }
    # The months that were not served (404) are recorded as failed pages, not a crash.
    assert "pages failed" in result.stderr


def test_getchu_age_gate_is_a_reason_never_a_cached_empty_product(
    site_server, getchu, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    getchu(
        server,
        {1001: small_images[0:2], 1002: small_images[2:4]},
        year=2015,
        month=4,
        age_gate_ignores_cookie={1002},
    )
    config = write_config([{"kind": "getchu", "base_url": server.base, "years": [2015], "months": [4]}])
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 0, result.stderr
    assert "age_gate" in result.stderr and [
        h for h in server.hits() if h.path.startswith("/php/attestation.html")
    ]
    assert {r["meta"]["product_id"] for r in raw_rows(data)} == {"1001"}

    # The site lets the cookie through again: the product is asked for again and crawled.
    getchu(server, {1001: small_images[0:2], 1002: small_images[2:4]}, year=2015, month=4)
    again = run_crawler(config, data)
    assert again.returncode == 0, again.stderr
    assert {r["meta"]["product_id"] for r in raw_rows(data)} == {"1001", "1002"}


def test_getchu_listing_layout_change_is_loud_and_fails_the_run(
    site_server, realsites, write_config, run_crawler, tmp_path
):
    """HAND-MADE listing: the real 2015-04 page's product links survive but its a.black title links
    are renamed, which is what a markup change looks like to the parser."""
    server = site_server()
    html_headers = {"Content-Type": "text/html"}
    for month in (1, 2):
        page = recorded.listing_bytes(realsites, "2015_04").replace(b'class="black"', b'class="title"')
        server.route(
            f"/all/month_title.html?genre=pc_soft&gage=&year=2015&month={month:02d}",
            server.Reply(200, page, html_headers),
        )
    config = write_config([{"kind": "getchu", "base_url": server.base, "years": [2015], "months": [1, 2]}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 6, result.stderr
    assert (
        "listing_unparsed" in result.stderr
        and "month_title.html?genre=pc_soft&gage=&year=2015&month=01" in result.stderr
    )
    assert re.search(r"listings unparsed \(markup changed\?\)\s+2\n", result.stderr), result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("crawler: source #1 (getchu) answered but could not be read")
    )
    assert "markup has probably changed" in result.stderr.strip().splitlines()[-1]
    assert "all 2 listing page(s) answered but none could be read as a getchu listing" in result.stderr
    assert not [h for h in server.hits() if h.path.startswith(("/soft.phtml", "/item/"))]


def test_danbooru_cursor_md5_hidden_and_variants(
    site_server, make_danbooru_post, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    page1 = [
        make_danbooru_post(server, 900, small_images[0]),
        make_danbooru_post(server, 899, b"", hidden=True),
        make_danbooru_post(server, 898, small_images[1]),
    ]
    page2 = [
        make_danbooru_post(server, 897, small_images[2]),
        # the site's md5 disagrees with the bytes
        make_danbooru_post(server, 896, small_images[3], md5="0" * 32),
    ]
    # A post whose 360x360 variant is large enough: the variant is fetched, not the original.
    variant_post = make_danbooru_post(server, 895, small_images[4])
    variant_url = "/data/720x720/variant895.jpg"
    server.route(variant_url, server.Reply(200, small_images[5], {"Content-Type": "image/jpeg"}))
    variant_post["media_asset"]["variants"].insert(
        2, {"type": "720x720", "url": server.url(variant_url), "width": 576, "height": 720, "file_ext": "jpg"}
    )
    json_headers = {"Content-Type": "application/json; charset=utf-8"}
    server.route(
        "/posts.json?tags=1girl+solo&limit=3", server.Reply(200, json.dumps(page1).encode(), json_headers)
    )
    server.route(
        "/posts.json?tags=1girl+solo&limit=3&page=b898",
        server.Reply(200, json.dumps(page2 + [variant_post]).encode(), json_headers),
    )
    server.route("/posts.json?tags=1girl+solo&limit=3&page=b895", server.Reply(200, b"[]", json_headers))
    config = write_config(
        [
            {
                "kind": "danbooru",
                "base_url": server.base,
                "tags": "1girl solo",
                "per_page": 3,
                "variant_min_side": 500,
            }
        ]
    )
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr

    rows = {r["sha256"]: r for r in raw_rows(tmp_path / "data")}
    assert set(rows) == {sha(small_images[i]) for i in (0, 1, 2, 5)}
    assert rows[sha(small_images[0])]["meta"] == {
        "post_id": 900,
        "tags": "1girl solo long_hair smile",
        "md5": hashlib.md5(small_images[0]).hexdigest(),
        "rating": "g",
        "verified": "md5",
    }
    assert rows[sha(small_images[5])]["meta"]["variant"] == "720x720"
    # a variant's bytes have no md5 to check
    assert rows[sha(small_images[5])]["meta"]["verified"] == "decode"
    assert "md5_mismatch" in result.stderr and "hidden_posts" in result.stderr
    assert not server.hits(f"/data/original/{hashlib.md5(small_images[4]).hexdigest()[:2]}")


def test_safebooru_json_and_id_cursor(site_server, small_images, write_config, run_crawler, tmp_path):
    server = site_server()

    def post(post_id: int, image: bytes, name: str) -> dict:
        server.route(f"/images/3717/{name}", server.Reply(200, image, {"Content-Type": "image/jpeg"}))
        return {
            "preview_url": "",
            "directory": "3717",
            "hash": hashlib.md5(image).hexdigest(),
            "height": 900,
            "id": post_id,
            "image": name,
            "change": 1700000000,
            "owner": "someone",
            "parent_id": 0,
            "rating": "general",
            "sample": False,
            "sample_height": 0,
            "sample_width": 0,
            "score": None,
            "tags": " 1girl blue_eyes solo ",
            "width": 700,
        }

    base = "/index.php?page=dapi&s=post&q=index&json=1"
    server.route(
        f"{base}&tags=1girl+solo&pid=0&limit=2",
        server.Reply(
            200, json.dumps([post(50, small_images[0], "a.jpg"), post(49, small_images[1], "b.jpg")]).encode()
        ),
    )
    server.route(
        f"{base}&tags=1girl+solo+id%3A%3C49&pid=0&limit=2",
        server.Reply(200, json.dumps([post(40, small_images[2], "c.jpg")]).encode()),
    )
    # empty body = no more results
    server.route(f"{base}&tags=1girl+solo+id%3A%3C40&pid=0&limit=2", server.Reply(200, b""))
    config = write_config(
        [{"kind": "safebooru", "base_url": server.base, "tags": "1girl solo", "per_page": 2}]
    )
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = raw_rows(tmp_path / "data")
    assert {r["sha256"] for r in rows} == {sha(b) for b in small_images[:3]}
    row = next(r for r in rows if r["sha256"] == sha(small_images[2]))
    assert row["url"] == server.url("/images/3717/c.jpg")
    assert row["meta"] == {
        "post_id": 40,
        "tags": "1girl blue_eyes solo",
        "md5": hashlib.md5(small_images[2]).hexdigest(),
        "verified": "md5",
    }


def test_anilist_graphql_pages_and_rate_limit_headers(
    site_server, small_images, write_config, run_crawler, tmp_path
):
    """HAND-MADE GraphQL answers: no AniList response is recorded in ../shared/realsites. Their
    shape is the query's own (`Page { pageInfo { hasNextPage } characters { ... } }`), and the
    rate-limit headers are the ones realsites/README.md reports (`X-RateLimit-Limit: 30`)."""
    server = site_server()
    for n in range(3):
        server.route(
            f"/file/anilistcdn/character/large/b{n}.jpg",
            server.Reply(200, small_images[n], {"Content-Type": "image/jpeg"}),
        )

    def character(cid: int, image: str | None) -> dict:
        return {
            "id": cid,
            "siteUrl": f"https://anilist.co/character/{cid}",
            "name": {"full": f"Name {cid}"},
            "image": {"large": image},
        }

    def graphql(hit):
        request = json.loads(hit.body)
        page = request["variables"]["page"]
        assert "FAVOURITES_DESC" in request["query"] and request["variables"]["perPage"] == 2
        characters = {
            1: [
                character(1, server.url("/file/anilistcdn/character/large/b0.jpg")),
                character(2, server.url("/file/anilistcdn/character/large/default.jpg")),
            ],
            2: [
                character(3, server.url("/file/anilistcdn/character/large/b1.jpg")),
                character(4, server.url("/file/anilistcdn/character/large/b2.jpg")),
            ],
        }[page]
        body = {"data": {"Page": {"pageInfo": {"hasNextPage": page < 2}, "characters": characters}}}
        headers = {
            "Content-Type": "application/json",
            "X-RateLimit-Limit": "30",
            "X-RateLimit-Remaining": "29",
        }
        return server.Reply(200, json.dumps(body).encode(), headers)

    # The first API call is told to come back later.
    server.route(
        "/",
        server.Reply(
            429,
            b'{"errors":[{"message":"Too Many Requests."}]}',
            {"Retry-After": "1", "X-RateLimit-Remaining": "0", "Content-Type": "application/json"},
        ),
        graphql,
    )
    config = write_config([{"kind": "anilist", "base_url": server.base + "/", "per_page": 2, "rate": 0}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = raw_rows(tmp_path / "data")
    assert {r["sha256"] for r in rows} == {sha(b) for b in small_images[:3]}
    assert {r["meta"]["character_id"] for r in rows} == {1, 3, 4}
    assert next(r for r in rows if r["meta"]["character_id"] == 3)["meta"]["name"] == "Name 3"
    posts = [h for h in server.hits("/") if h.method == "POST"]
    assert len(posts) == 3 and posts[1].time - posts[0].time >= 0.95  # Retry-After: 1 honoured
    assert "characters_without_image" in result.stderr


def test_folder_and_urls_sources(site_server, small_images, write_config, run_crawler, tmp_path):
    folder = tmp_path / "art"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(small_images[0])
    (folder / "sub" / "b.png").write_bytes(small_images[7])
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(small_images[1])
    server = site_server()
    server.route("/one.jpg", server.Reply(200, small_images[2], {"Content-Type": "image/jpeg"}))
    server.route("/same-bytes-again.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    (tmp_path / "urls.txt").write_text(
        f"# my list\n{server.url('/one.jpg')}\n\n{server.url('/same-bytes-again.jpg')}\n"
    )
    config = write_config([{"kind": "folder", "path": "art"}, {"kind": "urls", "file": "urls.txt"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = {r["sha256"]: r for r in raw_rows(tmp_path / "data")}
    assert set(rows) == {sha(small_images[i]) for i in (0, 7, 2)}
    shared = rows[sha(small_images[0])]
    assert [(p["site"], p["url"]) for p in shared["provenance"]] == [
        ("folder", (folder / "a.jpg").as_uri()),
        ("urls", server.url("/same-bytes-again.jpg")),
    ]
    assert (
        rows[sha(small_images[7])]["meta"] == {"path": "sub/b.png"}
        and rows[sha(small_images[7])]["format"] == "png"
    )
    assert "not_image" in result.stderr
