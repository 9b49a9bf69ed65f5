"""getchu.com: month listings -> product pages -> character images (the classic anime-face source).

Pages are EUC-JP and are decoded here from the bytes: without a charset header
requests would guess ISO-8859-1 and the キャラ match would silently find nothing.
The age gate is passed both ways the site accepts (gc=gc and the adult-flag cookie).
Product links changed markup over the years: `td.dd > a` (2019) and `.product a.black`
(later); both are read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import urljoin

from bs4 import BeautifulSoup

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, WebSourceBase

ENCODING = "euc_jp"
PRODUCT_ID = re.compile(r"[?&]id=(\d+)")


@dataclasses.dataclass
class GetchuConfig(WebSourceBase):
    base_url: str = "https://www.getchu.com"
    years: list[int] = dataclasses.field(default_factory=lambda: [2010])
    months: list[int] = dataclasses.field(default_factory=lambda: list(range(1, 13)))
    genres: list[str] = dataclasses.field(default_factory=lambda: ["pc_soft"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError(f"months must be 1..12, got {self.months}")
        if any(not 1990 <= y <= 2100 for y in self.years):
            raise ValueError(f"years look wrong: {self.years}")
        bad = [g for g in self.genres if g not in ("pc_soft", "dvd_game")]
        if bad:
            raise ValueError(f"genres must be pc_soft or dvd_game, got {bad}")


def decode(fetched: Fetched) -> str:
    return fetched.body.decode(ENCODING, errors="replace")


def parse_month(fetched: Fetched) -> list[str]:
    """Product ids on a month listing, in page order, from either layout."""
    soup = BeautifulSoup(decode(fetched), "html.parser")
    ids: list[str] = []
    for link in soup.select("td.dd > a[href], .product a.black[href]"):
        href = link.get("href", "")
        match = PRODUCT_ID.search(href)
        if "soft.phtml" in href and match and match.group(1) not in ids:
            ids.append(match.group(1))
    return ids


def parse_product(fetched: Fetched) -> dict:
    """Title and character images (with the character's name when the page gives one)."""
    soup = BeautifulSoup(decode(fetched), "html.parser")
    heading = soup.select_one("#soft-title")
    if heading is not None:
        title = " ".join(heading.get_text(" ", strip=True).split())
    else:
        title = soup.title.get_text(strip=True) if soup.title else ""
    characters = []
    seen = set()
    for img in soup.find_all("img", alt=True):
        if "キャラ" not in img["alt"] or not img.get("src"):
            continue
        url = urljoin(fetched.url, img["src"])
        if url in seen:
            continue
        seen.add(url)
        characters.append({"url": url, "alt": img["alt"], "character": _character_name(img)})
    return {"title": title, "characters": characters}


def _character_name(img) -> str | None:
    row = img.find_parent("tr")
    name = row.select_one(".chara-name") if row is not None else None
    if name is None:
        return None
    inner = name.find("charalist")
    text = (inner or name).get_text(" ", strip=True)
    return " ".join(text.split()) or None


class Getchu(Site):
    kind = "getchu"
    Config = GetchuConfig

    def headers(self) -> dict[str, str]:
        return {"Cookie": "getchu_adalt_flag=getchu.com"}

    def items(self) -> Iterator[Item]:
        base = self.source.base_url
        for genre in self.source.genres:
            for year in self.source.years:
                for month in self.source.months:
                    listing = (
                        f"{base}/all/month_title.html?genre={genre}&year={year}&month={month:02d}&gage=all&gc=gc"
                    )
                    product_ids = self.pages.get(
                        listing, parse_month, self.hosts(), volatile=True, headers=self.headers()
                    )
                    for product_id in product_ids or []:
                        page_url = f"{base}/soft.phtml?id={product_id}&gc=gc"
                        product = self.pages.get(page_url, parse_product, self.hosts(), headers=self.headers())
                        if product is None:
                            continue
                        if not product["characters"]:
                            self.counts["products_without_characters"] += 1
                        for character in product["characters"]:
                            meta = {"product_id": product_id, "title": product["title"], "alt": character["alt"]}
                            if character["character"]:
                                meta["character"] = character["character"]
                            yield Item(url=character["url"], page_url=page_url, meta=meta)
