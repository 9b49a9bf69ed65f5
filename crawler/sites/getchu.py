"""getchu.com: month listings -> product pages -> character images (the classic anime-face source).

What the real site does (recorded pages in ../shared/realsites/getchu, README there):
- Pages are EUC-JP with no charset header, so they are decoded here from the bytes.
- A month listing links each product with an `a.black` title link to `soft.phtml?id=N `
  (a space before the closing quote). That link is the one thing the 2014-2015
  (`div.category_pc_b`), 2023 (`.product`) and 2026 (`div.div_product`) layouts share; the
  same pages carry other `soft.phtml` links (package thumbnails, sidebars) that are not titles.
- `soft.phtml?id=N` redirects to `/item/N/` and drops the query string, so the age gate is
  passed with the adult-flag cookie; without it the site answers with its age-check page
  (`/php/attestation.html`), which is never cached as a product.
- A product's characters are `c<id>chara<N>.jpg` (the character image) and, behind the
  "クリックで拡大" thumbnail, `c<id>charab<N>.jpg` (the full-size standing picture, the better
  face source). Related products' package images are on the same page, sometimes with キャラ
  in their alt text, so images are taken by file name and product id, never by alt text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from crawler.fetcher import Fetched
from crawler.pages import PageRejected
from crawler.sites.base import Item, Site, WebSourceBase

ENCODING = "euc_jp"
COOKIE = "getchu_adalt_flag=getchu.com"
PRODUCT_ID = re.compile(r"soft\.phtml\?(?:[^\"'#]*&)?id=(\d+)")
PRODUCT_LINK = re.compile(r"soft\.phtml\?[^\"'>]*id=\d+|/item/\d+")
AGE_GATE_PATH = "/php/attestation.html"
RELATED_LINK_TEXT = "このタイトルの関連商品"
IMAGE_KINDS = ("standing", "character")  # charab<N> full-size standing picture, chara<N> character image
VOICE = re.compile(r"\s*(?:CV|ＣＶ)\s*[：:]\s*(?P<voice>.+?)\s*$")
READING = re.compile(r"^(?P<name>.+?)\s*[（(](?P<reading>[^（）()]+)[）)]\s*$")


@dataclasses.dataclass
class GetchuConfig(WebSourceBase):
    base_url: str = "https://www.getchu.com"
    years: list[int] = dataclasses.field(default_factory=lambda: [2010])
    months: list[int] = dataclasses.field(default_factory=lambda: list(range(1, 13)))
    genres: list[str] = dataclasses.field(default_factory=lambda: ["pc_soft"])
    images: list[str] = dataclasses.field(default_factory=lambda: list(IMAGE_KINDS))  # which character images

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError(f"months must be 1..12, got {self.months}")
        if any(not 1990 <= y <= 2100 for y in self.years):
            raise ValueError(f"years look wrong: {self.years}")
        bad = [g for g in self.genres if g not in ("pc_soft", "dvd_game")]
        if bad:
            raise ValueError(f"genres must be pc_soft or dvd_game, got {bad}")
        if not self.images or any(kind not in IMAGE_KINDS for kind in self.images):
            raise ValueError(
                f"images must be a non-empty list of {', '.join(IMAGE_KINDS)}, got {self.images}"
            )


def decode(fetched: Fetched) -> str:
    return fetched.body.decode(ENCODING, errors="replace")


def parse_month(fetched: Fetched) -> dict:
    """Product ids on a month listing, in page order, deduplicated.

    A page that links products but whose title links parse to nothing is a layout change,
    reported as `listing_unparsed` rather than read as an empty month.
    """
    html = decode(fetched)
    soup = BeautifulSoup(html, "html.parser")
    ids: list[str] = []
    for link in soup.select("a.black[href]"):
        match = PRODUCT_ID.search(link["href"])
        if match and match.group(1) not in ids:
            ids.append(match.group(1))
    if not ids and PRODUCT_LINK.search(html):
        raise PageRejected("listing_unparsed", "the page links products but no a.black title link was found")
    return {"ids": ids}


def parse_product(fetched: Fetched) -> dict:
    """Title and this product's character images, with each character's name."""
    if urlsplit(fetched.url).path.startswith(AGE_GATE_PATH):
        raise PageRejected("age_gate", f"redirected to the age check {fetched.url}")
    soup = BeautifulSoup(decode(fetched), "html.parser")
    heading = soup.select_one("#soft-title")
    if heading is None:
        raise PageRejected(
            "age_gate", f"{fetched.url} has no product title (#soft-title): an age check or an error page"
        )
    match = re.search(r"/item/(\d+)|[?&]id=(\d+)", fetched.url)
    product_id = next((g for g in match.groups() if g), "") if match else ""
    return {
        "title": _title(heading),
        "page_url": fetched.url,
        "characters": _characters(soup, fetched.url, product_id),
    }


def _title(heading: Tag) -> str:
    for link in heading.find_all("a"):
        if RELATED_LINK_TEXT in link.get_text():
            link.decompose()
    return " ".join(heading.get_text(" ", strip=True).split())


def _characters(soup: BeautifulSoup, page_url: str, product_id: str) -> list[dict]:
    """One entry per image file of this product, in page order (character N's image, then its picture)."""
    own = re.compile(rf"/c{re.escape(product_id)}chara(b?)(\d+)\.jpg$") if product_id else None
    found: list[dict] = []
    seen: set[str] = set()
    for node in soup.find_all(["img", "a"]):
        url = node.get("src") if node.name == "img" else node.get("href")
        match = own.search(url) if own and url else None
        if match is None:
            continue
        absolute = urljoin(page_url, url)
        if absolute in seen:
            continue
        seen.add(absolute)
        entry = {
            "url": absolute,
            "kind": "standing" if match.group(1) else "character",
            "number": int(match.group(2)),
        }
        entry.update(_character_name(node))
        found.append(entry)
    return found


def _character_name(node: Tag) -> dict:
    """The character's clean name, and its reading and voice actor in their own fields."""
    row = node.find_parent("tr")
    element = row.select_one(".chara-name") if row is not None else None
    if element is None:
        return {}
    inner = element.find("charalist")  # older pages wrap the name and put the role beside it
    text = " ".join((inner or element).get_text(" ", strip=True).split())
    fields: dict[str, str] = {}
    voice = VOICE.search(" ".join(element.get_text(" ", strip=True).split()))
    if voice:
        fields["voice"] = voice.group("voice")
        text = VOICE.sub("", text)
    reading = READING.match(text)
    if reading:
        fields["reading"] = reading.group("reading").strip()
        text = reading.group("name")
    if text:
        fields["character"] = text.strip()
    return fields


class Getchu(Site):
    kind = "getchu"
    Config = GetchuConfig
    changed_hint = "getchu's markup has probably changed (see docs/crawler.md, getchu)"

    def headers(self) -> dict[str, str]:
        return {"Cookie": COOKIE}

    def items(self) -> Iterator[Item]:
        for listing in self._listing_urls():
            page = self.pages.get(listing, parse_month, self.allowed(), volatile=True, headers=self.headers())
            if page is None:
                continue
            for product_id in page["ids"]:
                yield from self._product_items(product_id)

    def _listing_urls(self) -> Iterator[str]:
        base = self.source.base_url
        for genre in self.source.genres:
            for year in self.source.years:
                for month in self.source.months:
                    yield f"{base}/all/month_title.html?genre={genre}&gage=&year={year}&month={month:02d}"

    def _product_items(self, product_id: str) -> Iterator[Item]:
        page_url = f"{self.source.base_url}/soft.phtml?id={product_id}"
        product = self.pages.get(page_url, parse_product, self.allowed(), headers=self.headers())
        if product is None:
            return
        characters = [c for c in product["characters"] if c["kind"] in self.source.images]
        if not characters:
            self.counts["products_without_characters"] += 1
        for character in characters:
            meta = {"product_id": product_id, "title": product["title"], "image": character["kind"]}
            meta.update({k: character[k] for k in ("character", "reading", "voice") if k in character})
            yield Item(url=character["url"], page_url=product["page_url"], meta=meta)
