"""Real recorded responses of getchu, Danbooru and Safebooru, shaped for a test site on 127.0.0.1.

Everything here starts from the bytes in ../shared/realsites (provenance in its README) and
changes only what a local copy of the site must change, each change named where it is made:
- getchu listings keep their first K product blocks (the `div` each product sits in) and
  have those products' ids swapped for the test's ids;
- the getchu `/item/` page has its id swapped per product and keeps as many character rows
  as the test has images, and is re-encoded to EUC-JP as the live site serves it (the
  recording was stored as UTF-8);
- Danbooru's robots.txt is its real ERB template rendered the way the live site renders it;
- API JSON has its image URLs pointed at the local server.
Hand-made pages (the age-check page, the 2026 listing layout, a related product whose alt
text mentions キャラ) are marked as such, with where their shape came from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bs4 import BeautifulSoup

GETCHU_LISTINGS = ("2014_12", "2015_02", "2015_04")
GETCHU_LISTING_COUNTS = {"2014_12": 91, "2015_02": 51, "2015_04": 33}  # measured, realsites/README.md
GETCHU_ITEM_ID = "1361161"
GETCHU_ITEM_CHARACTERS = 9
ENCODING = "euc_jp"
TITLE_LINK = re.compile(r"soft\.phtml\?id=(\d+)")


def listing_bytes(realsites: Path, name: str) -> bytes:
    return (realsites / "getchu" / "month" / f"{name}.html").read_bytes()


def item_text(realsites: Path) -> str:
    return (realsites / "getchu" / "item" / f"getchu-item-{GETCHU_ITEM_ID}.html").read_text(encoding="utf-8")


def getchu_listing(realsites: Path, name: str, product_ids: list[int]) -> bytes:
    """A real month listing cut to len(product_ids) products, whose ids become `product_ids`."""
    soup = BeautifulSoup(listing_bytes(realsites, name).decode(ENCODING), "html.parser")
    blocks = []
    for link in soup.select("a.black[href]"):
        match = TITLE_LINK.search(link["href"])
        block = link.find_parent("div", style=re.compile("float")) if match else None
        if block is not None and block not in blocks:
            blocks.append(block)
    if len(product_ids) > len(blocks):
        raise ValueError(f"{name} lists {len(blocks)} products, the test asked for {len(product_ids)}")
    for block in blocks[len(product_ids) :]:
        block.decompose()
    for block, new_id in zip(blocks, product_ids, strict=False):
        real_id = TITLE_LINK.search(block.select_one("a.black[href]")["href"]).group(1)
        for node in block.find_all(True):
            for attr in ("href", "src"):
                if node.get(attr):
                    node[attr] = node[attr].replace(real_id, str(new_id))
    return str(soup).encode(ENCODING, errors="xmlcharrefreplace")


def getchu_listing_2026(product_ids: list[int]) -> bytes:
    """HAND-MADE: no saved page of the 2026 listing layout exists. Its shape is what the 2026
    scrapers described in realsites/README.md read: `div.div_product` blocks holding a
    package thumbnail link `a[href*='soft.phtml?id=']` and an `a.black` title link."""
    blocks = "\n".join(
        f'<div class="div_product"><a href="/soft.phtml?id={pid}"><img src="/brandnew/{pid}/c{pid}package_ss.jpg"></a>'
        f'<a href="/soft.phtml?id={pid} " class="black">作品{pid}</a></div>'
        for pid in product_ids
    )
    page = f'<html><head><meta charset="EUC-JP"><title>月別発売タイトル</title></head><body>{blocks}</body></html>'
    return page.encode(ENCODING)


RELATED_CHARA_SONG = (
    # HAND-MADE: the recorded page has no related product whose alt mentions キャラ; the issue and
    # realsites/README.md describe such pages (a character-song CD among the related products).
    '<div class="related"><a href="/soft.phtml?id=990001"><img src="/brandnew/990001/c990001package_s.jpg" '
    'alt="キャラクターソングCD Vol.1"></a></div>'
)


def getchu_item(
    realsites: Path,
    product_id: int,
    images: int,
    *,
    title: str | None = None,
    related_chara_song: bool = True,
) -> bytes:
    """The real /item/ page with its id swapped for `product_id`, keeping ceil(images / 2) characters.

    Its image URLs in page order are character N's image then its standing picture, so `images`
    URLs are left; an odd count drops the last character's standing picture. `title` replaces the
    product title's text (escaped as the site escapes it), keeping the related-products link.
    """
    text = item_text(realsites).replace(GETCHU_ITEM_ID, str(product_id))
    soup = BeautifulSoup(text, "html.parser")
    if title is not None:
        heading = soup.select_one("#soft-title")
        heading.contents[0].replace_with(title + " ")
    keep = (images + 1) // 2
    if keep > GETCHU_ITEM_CHARACTERS:
        raise ValueError(f"the recorded page has {GETCHU_ITEM_CHARACTERS} characters, asked for {keep}")
    rows = [
        img.find_parent("tr") for img in soup.find_all("img", src=re.compile(rf"c{product_id}chara\d+\.jpg$"))
    ]
    for row in rows[keep:]:
        separator = row.find_next_sibling("tr")
        if separator is not None and separator.find("hr") is not None:
            separator.decompose()
        row.decompose()
    if images % 2 and keep:
        rows[keep - 1].find("a", href=re.compile(r"charab\d+\.jpg$")).find_parent("td").decompose()
    if related_chara_song:
        soup.body.append(BeautifulSoup(RELATED_CHARA_SONG, "html.parser"))
    return str(soup).encode(ENCODING, errors="xmlcharrefreplace")


def getchu_image_paths(product_id: int, images: int) -> list[str]:
    """The image paths getchu_item(product_id, images) links, in page order."""
    paths = []
    for n in range(1, (images + 1) // 2 + 1):
        paths.append(f"/brandnew/{product_id}/c{product_id}chara{n}.jpg")
        paths.append(f"/brandnew/{product_id}/c{product_id}charab{n}.jpg")
    return paths[:images]


AGE_CHECK_PAGE = (
    # HAND-MADE from the description in realsites/README.md: `/php/attestation.html?aurl=…`,
    # headed <h1>年齢認証ページ</h1>, with a 【すすむ】 link to continue.
    '<html><head><meta charset="EUC-JP"><title>年齢認証</title></head><body><h1>年齢認証ページ</h1>'
    '<p>あなたは18歳以上ですか？</p><a href="{aurl}">【すすむ】</a></body></html>'
)


def danbooru_robots(realsites: Path) -> bytes:
    """Danbooru's robots.txt template rendered as the live site renders it (realsites/README.md):
    web crawlers allowed, each `<%= name_path %>` as `/name`, the honeypot as its real path."""
    template = (realsites / "danbooru" / "danbooru_robots_index.text.erb").read_text(encoding="utf-8")
    template = re.sub(
        r"<%= post_path\(2884633, i_am_dumb: \"true\"\) %>", "/posts/2884633?i_am_dumb=true", template
    )
    template = re.sub(
        r"<%= sitemap_url\([^%]*sitemap: \"(\w+)\"\) %>",
        r"https://danbooru.donmai.us/sitemap_\1.xml",
        template,
    )
    template = re.sub(r"<%= (\w+?)_path(?:\(format: :(\w+)\))? %>", _path, template)
    template = re.sub(r"<%#.*?%>", "", template)
    template = re.sub(r"<% (?:if|end)[^%]*%>", "", template)
    if "<%" in template:
        raise ValueError(
            "unrendered ERB left in the robots template: " + template[template.index("<%") :][:80]
        )
    return template.encode("utf-8")


def _path(match: re.Match) -> str:
    path = "/" + match.group(1)
    return path + (f".{match.group(2)}" if match.group(2) else "")


def danbooru_posts(realsites: Path, name: str, origin: str) -> list[dict]:
    """A recorded /posts.json body, with danbooru's and its CDN's origins pointed at `origin`."""
    text = (realsites / "danbooru" / name).read_text(encoding="utf-8")
    for real in ("https://danbooru.donmai.us", "https://cdn.donmai.us"):
        text = text.replace(real, origin)
    return json.loads(text)


def safebooru_posts(realsites: Path, origin: str) -> list[dict]:
    text = (realsites / "safebooru" / "booruhs_safebooru_6077620_2025-09.json").read_text(encoding="utf-8")
    return json.loads(text.replace("https://safebooru.org", origin))
