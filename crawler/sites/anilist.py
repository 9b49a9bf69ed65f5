"""AniList: character portraits from the GraphQL API, most-favourited first.

The API documents 90 requests/min but the live API reports `X-RateLimit-Limit: 30`, so
this site's default rate is 0.4/s (24/min, headroom for clock skew and a second client);
the fetcher honours Retry-After and the X-RateLimit-* headers on top. AniList's terms
allow non-commercial use and forbid mass collection: keep max_images modest.
Characters without a portrait point at a shared default.jpg, which is skipped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, WebSourceBase

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
    body = json.loads(fetched.body)
    if body.get("errors"):
        raise ValueError(f"GraphQL errors: {body['errors']}")
    page = body["data"]["Page"]
    characters = [
        {
            "id": c["id"],
            "name": (c.get("name") or {}).get("full"),
            "image": (c.get("image") or {}).get("large"),
            "site_url": c.get("siteUrl"),
        }
        for c in page["characters"]
    ]
    return {"has_next": bool(page["pageInfo"]["hasNextPage"]), "characters": characters}


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
            for character in result["characters"]:
                image = character["image"]
                if not image or image.rsplit("/", 1)[-1].startswith("default."):
                    self.counts["characters_without_image"] += 1
                    continue
                meta = {"character_id": character["id"], "name": character["name"]}
                yield Item(url=image, page_url=character["site_url"] or self.source.base_url, meta=meta)
            if not result["has_next"]:
                return
            page += 1
