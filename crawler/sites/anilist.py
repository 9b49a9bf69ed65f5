"""AniList: character portraits from the GraphQL API, most-favourited first.

The API documents 90 requests/min but the live API reports `X-RateLimit-Limit: 30`, so
this site's default rate is 0.4/s (24/min, headroom for clock skew and a second client);
the fetcher honours Retry-After and the X-RateLimit-* headers on top. AniList's terms
allow non-commercial use and forbid mass collection: keep max_images modest.
Characters without a portrait point at a shared default.jpg, which is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from crawler.fetcher import Fetched
from crawler.pages import PageRejected
from crawler.sites.base import Item, Site, WebSourceBase
from crawler.sites.fields import expect, field, load_json, records

QUERY = """
query ($page: Int, $perPage: Int) {
  Page(page: $page, perPage: $perPage) {
    pageInfo { hasNextPage }
    characters(sort: FAVOURITES_DESC) { id siteUrl name { full } image { large } }
  }
}
""".strip()


@dataclasses.dataclass
class AnilistConfig(WebSourceBase):
    base_url: str = "https://graphql.anilist.co"
    per_page: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.per_page <= 50:
            raise ValueError("per_page must be 1..50")


def parse_page(fetched: Fetched) -> dict:
    """One GraphQL page; a character with a wrong field becomes {"malformed": why}."""
    body = expect(load_json(fetched), dict, "the body", fetched)
    if body.get("errors"):
        raise PageRejected("unparseable", f"{fetched.url}: GraphQL errors: {str(body['errors'])[:300]}")
    data = expect(body.get("data"), dict, "data", fetched)
    page = expect(data.get("Page"), dict, "data.Page", fetched)
    info = expect(page.get("pageInfo"), dict, "data.Page.pageInfo", fetched)
    characters = records(fetched, page.get("characters"), _character_fields, "character")
    return {"has_next": info.get("hasNextPage") is True, "characters": characters}


def _character_fields(character: object) -> dict:
    return {
        "id": field(character, "id", int, required=True),
        "name": field(field(character, "name", dict) or {}, "full", str),
        "image": field(field(character, "image", dict) or {}, "large", str),
        "site_url": field(character, "siteUrl", str),
    }


class Anilist(Site):
    kind = "anilist"
    Config = AnilistConfig
    default_rate = 0.4
    cdn_hosts = ("s4.anilist.co", "s1.anilist.co", "img.anili.st")

    def items(self) -> Iterator[Item]:
        page = 1
        while True:
            payload = {"query": QUERY, "variables": {"page": page, "perPage": self.source.per_page}}
            result = self.pages.get(
                self.source.base_url,
                parse_page,
                self.allowed(),
                volatile=True,
                post_json=payload,
                headers={"Accept": "application/json"},
            )
            if result is None:
                return
            yield from self.fresh(item for item in map(self._item, result["characters"]) if item is not None)
            if not result["has_next"] or self.listing_stalled():
                return
            page += 1

    def _item(self, character: dict) -> Item | None:
        if "malformed" in character:
            self.counts["malformed_characters"] += 1
            return None
        image = character["image"]
        if not image or image.rsplit("/", 1)[-1].startswith("default."):
            self.counts["characters_without_image"] += 1
            return None
        meta = {"character_id": character["id"], "name": character["name"]}
        return Item(url=image, page_url=character["site_url"] or self.source.base_url, meta=meta)
