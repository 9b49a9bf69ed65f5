"""The site parsers and politeness rules on the real recorded responses in ../shared/realsites.

Counts here are the ones measured on those files (realsites/README.md). Mock sites serve the
recorded bytes with only what a local copy must change (tests/helpers/realsites.py says what).
"""

from __future__ import annotations

import json
import re

import pytest
from protego import Protego

from crawler.robots import ai_opt_out
from crawler.sites import danbooru, getchu, safebooru
from pipeline.atomic import read_jsonl
from pipeline.layout import Layout
from tests.helpers import realsites as recorded
from tests.helpers.sites import fetched

JSON = {"Content-Type": "application/json; charset=utf-8"}


# ---------------------------------------------------------------- getchu


@pytest.mark.parametrize("name", recorded.GETCHU_LISTINGS)
def test_getchu_listing_counts_on_the_real_pages(realsites, name):
    body = recorded.listing_bytes(realsites, name)
    ids = getchu.parse_month(fetched("https://www.getchu.com/all/month_title.html", body))["ids"]
    assert len(ids) == recorded.GETCHU_LISTING_COUNTS[name]
    assert len(set(ids)) == len(ids)
    # Page order: the first title link on the page comes first.
    first = re.search(rb'<A href="/soft.phtml\?id=(\d+) " class="black">', body).group(1).decode()
    assert ids[0] == first
    # The other soft.phtml links (thumbnails, sidebars) are not products of their own.
    all_links = len(re.findall(rb"soft\.phtml\?id=\d+", body))
    assert all_links > len(ids)


def test_getchu_2026_listing_layout_hand_made(realsites):
    """HAND-MADE page (no saved 2026 listing exists; shape from realsites/README.md)."""
    body = recorded.getchu_listing_2026([7, 8, 7])
    assert getchu.parse_month(fetched("https://www.getchu.com/all/month_title.html", body)) == {
        "ids": ["7", "8"]
    }


def test_getchu_item_page_characters_title_and_names(realsites):
    body = recorded.item_text(realsites).encode("euc_jp")
    product = getchu.parse_product(fetched("https://www.getchu.com/item/1361161/", body))
    assert product["title"] == "マガルミナ 通常版"  # without "（このタイトルの関連商品）"
    characters = product["characters"]
    assert len(characters) == 18  # 9 characters, each an image and a full-size standing picture
    assert [c["kind"] for c in characters[:2]] == ["character", "standing"]
    assert characters[0]["url"] == "https://www.getchu.com/brandnew/1361161/c1361161chara1.jpg"
    assert characters[1]["url"] == "https://www.getchu.com/brandnew/1361161/c1361161charab1.jpg"
    assert all(re.search(r"/c1361161charab?[1-9]\.jpg$", c["url"]) for c in characters)
    names = [c.get("character") for c in characters[::2]]
    assert names[0] == "福留大和" and characters[0]["reading"] == "ふくとめ やまと"
    assert names[1] == "メルヴィ・マルローゼ" and "reading" not in characters[2]
    assert all(name and "（" not in name and "CV" not in name for name in names)


def test_getchu_related_product_with_chara_in_alt_is_not_character_art(realsites):
    """The related character-song CD is HAND-MADE into the real page (tests/helpers/realsites.py says why)."""
    body = recorded.getchu_item(realsites, 1361161, 18)
    assert "キャラクターソングCD".encode("euc_jp") in body
    product = getchu.parse_product(fetched("https://www.getchu.com/item/1361161/", body))
    assert len(product["characters"]) == 18
    assert not [c for c in product["characters"] if "990001" in c["url"]]


def test_getchu_names_split_voice_and_role():
    """HAND-MADE rows in the older layout: <charalist> name, role text and "CV：…" in one element."""
    page = (
        '<h2 id="soft-title">作品</h2><table><tr><td><img src="/brandnew/5/c5chara1.jpg"></td>'
        '<td><h2 class="chara-name"><charalist>桜井 ひかり</charalist>（さくらい ひかり）　CV：声優 一</h2></td></tr>'
        '<tr><td><img src="/brandnew/5/c5chara2.jpg"></td><td><h2 class="chara-name">主人公の幼馴染　月島 あおい CV:声優 二</h2>'
        "</td></tr></table>"
    ).encode("euc_jp")
    characters = getchu.parse_product(fetched("https://www.getchu.com/soft.phtml?id=5", page))["characters"]
    assert characters[0]["character"] == "桜井 ひかり" and characters[0]["voice"] == "声優 一"
    assert characters[1]["voice"] == "声優 二" and "CV" not in characters[1]["character"]


def test_getchu_age_check_page_is_rejected_not_parsed(realsites):
    from crawler.pages import PageRejected

    gate = recorded.AGE_CHECK_PAGE.format(aurl="/item/1/").encode("euc_jp")
    with pytest.raises(PageRejected, match="age_gate"):
        getchu.parse_product(fetched("https://www.getchu.com/php/attestation.html?aurl=%2Fitem%2F1%2F", gate))
    with pytest.raises(PageRejected, match="age_gate"):  # same page, served without the redirect
        getchu.parse_product(fetched("https://www.getchu.com/item/1/", gate))


# ---------------------------------------------------------------- robots.txt


def test_danbooru_robots_rendered_rfc9309(realsites):
    rules = Protego.parse(recorded.danbooru_robots(realsites).decode())
    ua = "anime-face-pipeline"
    assert rules.can_fetch("https://danbooru.donmai.us/posts?tags=1girl+solo", ua)
    assert rules.can_fetch("https://danbooru.donmai.us/data/4f39497ef8fcd059984c3b1fe86cf542.png", ua)
    assert rules.can_fetch("https://danbooru.donmai.us/original/bd/6c/x.jpg", ua)
    assert not rules.can_fetch("https://danbooru.donmai.us/posts.json?tags=1girl+solo&limit=200", ua)
    assert not rules.can_fetch("https://danbooru.donmai.us/posts/2884633?i_am_dumb=true", ua)
    assert not rules.can_fetch("https://danbooru.donmai.us/posts/random", ua)  # longer than Allow: /posts
    assert not rules.can_fetch("https://danbooru.donmai.us/anything/else", ua)  # only Disallow: / matches
    # Allow: /users is longer than Disallow: /
    assert rules.can_fetch("https://danbooru.donmai.us/users/1", ua)


def test_danbooru_under_its_real_robots_stops_at_once(
    site_server, realsites, write_config, run_crawler, tmp_path
):
    server = site_server()
    server.route(
        "/robots.txt",
        server.Reply(200, recorded.danbooru_robots(realsites), {"Content-Type": "text/plain"}),
    )
    posts = recorded.danbooru_posts(realsites, "grabber_search_2020-07.json", server.base)
    server.route("/posts.json", server.Reply(200, json.dumps(posts).encode(), JSON))
    config = write_config([{"kind": "danbooru", "base_url": server.base, "tags": "1girl solo"}])
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 6, result.stderr  # the only source could crawl nothing
    assert [h.path for h in server.hits()] == ["/robots.txt"]  # not one disallowed URL fetched
    stop = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("crawler: source #1 (danbooru) stopped")
    ]
    assert len(stop) == 1 and "Disallow: /*.json" in stop[0] and "obey_robots = false" in stop[0]
    assert re.search(r"skipped by robots.txt\s+1\n", result.stderr)
    assert "robots_disallowed" in result.stderr

    # The next run reads robots.txt again (it may have changed) and asks for nothing else.
    again = run_crawler(config, data)
    assert again.returncode == 6
    assert [h.path for h in server.hits()] == ["/robots.txt", "/robots.txt"]


def test_danbooru_real_posts_with_obey_robots_off(
    site_server, realsites, small_images, write_config, run_crawler, tmp_path
):
    """2020 posts (file_url on /data/, md5 checked) and a 2025 post (media_asset.variants, decode-verified)."""
    server = site_server()
    server.route(
        "/robots.txt",
        server.Reply(200, recorded.danbooru_robots(realsites), {"Content-Type": "text/plain"}),
    )
    old = recorded.danbooru_posts(realsites, "grabber_search_2020-07.json", server.base)
    new = recorded.danbooru_posts(realsites, "booruhs_post_9969513_2025-09.json", server.base)
    # The recorded md5s are of the real files, which we do not have: the first 2020 post's file is
    # served with other bytes (a md5 mismatch); the 2025 post's 720x720 variant is served as a real image.
    server.route(
        old[0]["file_url"].removeprefix(server.base),
        server.Reply(200, small_images[0], {"Content-Type": "image/png"}),
    )
    variant = next(v for v in new[0]["media_asset"]["variants"] if v["type"] == "720x720")
    server.route(
        variant["url"].removeprefix(server.base),
        server.Reply(200, small_images[1], {"Content-Type": "image/webp"}),
    )
    server.route(
        "/posts.json?tags=1girl+solo&limit=200", server.Reply(200, json.dumps(new + old[:1]).encode(), JSON)
    )
    server.route(
        f"/posts.json?tags=1girl+solo&limit=200&page=b{old[0]['id']}", server.Reply(200, b"[]", JSON)
    )
    config = write_config(
        [{"kind": "danbooru", "base_url": server.base, "tags": "1girl solo", "obey_robots": False}]
    )
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(Layout(data).raw_manifest)
    assert len(rows) == 1
    assert rows[0]["url"] == variant["url"]
    assert rows[0]["meta"]["variant"] == "720x720" and rows[0]["meta"]["verified"] == "decode"
    assert rows[0]["meta"]["rating"] == "g"
    # A md5 mismatch is fetched once more, then final: the next run does not fetch it again.
    mismatched = old[0]["file_url"].removeprefix(server.base)
    assert len(server.hits(mismatched)) == 2
    assert "md5_mismatch" in result.stderr
    again = run_crawler(config, data)
    assert again.returncode == 0, again.stderr
    assert len(server.hits(mismatched)) == 2
    assert "md5_mismatch" in again.stderr  # counted as failed earlier


def test_danbooru_ratings_filter_is_client_side(
    site_server, realsites, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    posts = recorded.danbooru_posts(realsites, "grabber_search_2020-07.json", server.base)[:3]
    for post, image in zip(posts, small_images, strict=False):
        server.route(
            post["file_url"].removeprefix(server.base),
            server.Reply(200, image, {"Content-Type": "image/png"}),
        )
    server.route("/posts.json?tags=1girl&limit=200", server.Reply(200, json.dumps(posts).encode(), JSON))
    config = write_config([{"kind": "danbooru", "base_url": server.base, "tags": "1girl", "ratings": ["g"]}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "rating_s_skipped" in result.stderr
    assert not [h for h in server.hits() if h.path.startswith("/data/")]
    assert all("rating" not in h.path for h in server.hits())  # no rating: tag used up


def test_danbooru_parser_on_both_real_responses(realsites):
    old = danbooru.parse_posts(
        fetched(
            "https://danbooru.donmai.us/posts.json",
            (realsites / "danbooru" / "grabber_search_2020-07.json").read_bytes(),
        )
    )
    assert len(old) == 10 and all(p["file_url"].startswith("https://danbooru.donmai.us/data/") for p in old)
    assert all(p["rating"] == "s" and len(p["md5"]) == 32 for p in old)
    new = danbooru.parse_posts(
        fetched(
            "https://danbooru.donmai.us/posts.json",
            (realsites / "danbooru" / "booruhs_post_9969513_2025-09.json").read_bytes(),
        )
    )
    assert len(new) == 1 and len(new[0]["variants"]) == 5
    assert danbooru.choose_variant(new[0], 512)["type"] == "720x720"
    assert danbooru.choose_variant(new[0], 0) is None


# ---------------------------------------------------------------- safebooru


def test_safebooru_real_post_url_from_integer_directory(realsites):
    raw = (realsites / "safebooru" / "booruhs_safebooru_6077620_2025-09.json").read_bytes()
    posts = safebooru.parse_posts(fetched("https://safebooru.org/index.php", raw))
    assert len(posts) == 1 and posts[0]["directory"] == 539
    recorded = json.loads(raw)[0]["file_url"]
    assert f"https://safebooru.org/images/{posts[0]['directory']}/{posts[0]['image']}" == recorded


def test_safebooru_real_post_without_file_url_and_md5_mismatch_is_final(
    site_server, realsites, small_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    posts = recorded.safebooru_posts(realsites, server.base)
    del posts[0]["file_url"]  # older responses have no file_url at all (realsites/README.md)
    image_path = f"/images/539/{posts[0]['image']}"
    server.route(image_path, server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    base = "/index.php?page=dapi&s=post&q=index&json=1"
    server.route(f"{base}&tags=1girl&pid=0&limit=100", server.Reply(200, json.dumps(posts).encode(), JSON))
    server.route(f"{base}&tags=1girl+id%3A%3C{posts[0]['id']}&pid=0&limit=100", server.Reply(200, b""))
    config = write_config([{"kind": "safebooru", "base_url": server.base, "tags": "1girl"}])
    data = tmp_path / "data"
    result = run_crawler(config, data)
    assert result.returncode == 0, result.stderr
    assert len(server.hits(image_path)) == 2  # the real md5 is not our bytes': once more, then final
    assert run_crawler(config, data).returncode == 0
    assert len(server.hits(image_path)) == 2


# ---------------------------------------------------------------- X-Robots-Tag


def test_x_robots_tag_noai_is_not_stored(site_server, small_images, write_config, run_crawler, tmp_path):
    server = site_server()
    kept = server.route("/a.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    noai = server.route(
        "/b.jpg", server.Reply(200, small_images[1], {"Content-Type": "image/jpeg", "X-Robots-Tag": "noai"})
    )
    other = server.route(
        "/c.jpg",
        server.Reply(
            200, small_images[2], {"Content-Type": "image/jpeg", "x-robots-tag": "otherbot: noimageai"}
        ),
    )
    (tmp_path / "urls.txt").write_text(f"{kept}\n{noai}\n{other}\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}])
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert {r["url"] for r in read_jsonl(Layout(tmp_path / "data").raw_manifest)} == {kept, other}
    assert re.search(r"opted_out\s+1\n", result.stderr), result.stderr


@pytest.mark.parametrize(
    ("header", "opted_out"),
    [
        ("noai", True),
        ("noindex, NoImageAI", True),
        ("otherbot: noai", False),
        ("otherbot: noindex, noai", False),
        ("otherbot: noindex, anime-face-pipeline: noai", True),
        ("unavailable_after: 25 Jun 2030 15:00:00 PST, noai", True),
        ("noindex", False),
        (None, False),
    ],
)
def test_ai_opt_out_directives(header, opted_out):
    assert ai_opt_out(header, "anime-face-pipeline/0.1 (+contact)") is opted_out
