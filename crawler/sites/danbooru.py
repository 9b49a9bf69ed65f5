"""Danbooru: /posts.json walked with the `b<id>` cursor.

What the real site does (recorded responses in ../shared/realsites/danbooru): posts of
2020 carry `file_url` on `/data/`; posts of 2025 carry `media_asset.variants` on
cdn.donmai.us. Numbered pages stop at 1000 (410 Gone); the before-id cursor has no cap.
Hidden posts come without file_url/md5 and are skipped (counted). Originals are checked
against the post's md5; a smaller resized variant is preferred when it is still large
enough for faces, which saves the site bandwidth, and since a variant's bytes cannot be
checked against md5 it is verified by a full decode (the engine decodes every image)
and its meta says so. Anonymous searches take at most 2 tags, so ratings are filtered
here on each post's `rating` rather than with a `rating:` tag.

An account (`login` + `api_key`, from DANBOORU_LOGIN/DANBOORU_API_KEY or the credentials
file) is sent as HTTP Basic auth on the listing requests only, never in the URL (which is
cached, logged and stored) nor to the image CDN. Logged in, the 2-tag refusal is lifted: the
account's level sets the limit (Member 2, Gold 6, Platinum unlimited) and the site answers a
query over it with 422, which fails that listing page.

Its robots.txt disallows `/*.json`, so with obey_robots on, this source stops at its
first listing request; Danbooru documents the JSON API for clients, and a user who
accepts its terms sets `obey_robots = false` on the source (docs/crawler.md, robots.txt).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

from crawler.credentials import register_secret
from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, next_before_id
from crawler.sites.fields import Malformed, field, load_json, post_fields, records
from crawler.sites.ratings import LETTERS, RatedSourceBase, keep_rating

ANONYMOUS_TAGS = 2


@dataclasses.dataclass
class DanbooruConfig(RatedSourceBase):
    base_url: str = "https://danbooru.donmai.us"
    tags: str = "1girl solo"
    per_page: int = 200
    variant_min_side: int = (
        512  # smallest resized variant whose shorter side is >= this; 0 = always originals
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.per_page <= 200:
            raise ValueError("per_page must be 1..200")
        if self.variant_min_side < 0:
            raise ValueError("variant_min_side must be >= 0")


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "md5": str,
    "file_url": str,
    "tag_string": str,
    "image_width": int,
    "image_height": int,
    "file_ext": str,
    "rating": str,
}


def parse_posts(fetched: Fetched) -> list[dict]:
    """The posts of one /posts.json page; a post with a wrong field becomes {"malformed": why}."""
    return records(fetched, load_json(fetched), _post_fields)


def _post_fields(post: object) -> dict:
    row = post_fields(post, FIELD_TYPES)
    asset = field(post, "media_asset", dict) or {}
    row["variants"] = []
    for variant in field(asset, "variants", list) or []:
        try:
            row["variants"].append(
                {
                    "type": field(variant, "type", str),
                    "url": field(variant, "url", str, required=True),
                    "width": field(variant, "width", int),
                    "height": field(variant, "height", int),
                }
            )
        except Malformed:
            continue  # an unusable variant: the original or another variant is taken
    return row


def choose_variant(post: dict, min_side: int) -> dict | None:
    """The smallest non-original variant whose shorter side is still >= min_side."""
    if min_side <= 0:
        return None
    fitting = [
        v
        for v in post.get("variants", [])
        if v.get("type") != "original"
        and v.get("url")
        and min(v.get("width") or 0, v.get("height") or 0) >= min_side
    ]
    return min(fitting, key=lambda v: v["width"] * v["height"], default=None)


class Danbooru(Site):
    kind = "danbooru"
    Config = DanbooruConfig
    cdn_hosts = ("cdn.donmai.us",)
    credential_names = ("login", "api_key")
    rating_names = LETTERS

    @classmethod
    def check_settings(cls, source: Any, credentials: Mapping[str, str]) -> None:
        if len(credentials) == 1:
            (have,) = credentials
            missing = "DANBOORU_API_KEY" if have == "login" else "DANBOORU_LOGIN"
            raise ValueError(f"an account needs both login and api_key; {missing} is not set")
        if not credentials and len(source.tags.split()) > ANONYMOUS_TAGS:
            raise ValueError(
                f"danbooru allows {ANONYMOUS_TAGS} tags in an anonymous search, got {source.tags!r}; "
                "an account (DANBOORU_LOGIN, DANBOORU_API_KEY) allows its level's limit"
            )

    def _auth(self) -> dict[str, str] | None:
        if not self.credentials:
            return None
        pair = f"{self.credentials['login']}:{self.credentials['api_key']}".encode()
        token = base64.b64encode(pair).decode("ascii")
        register_secret(token)  # the header is never written anywhere; should it be, it is masked too
        return {"Authorization": "Basic " + token}

    def items(self) -> Iterator[Item]:
        base = self.source.base_url
        cursor = None
        while True:
            url = f"{base}/posts.json?tags={quote_plus(self.source.tags)}&limit={self.source.per_page}"
            if cursor is not None:
                url += f"&page=b{cursor}"
            posts = self.pages.get(
                url, parse_posts, self.allowed(), volatile=cursor is None, headers=self._auth()
            )
            if not posts:
                return
            yield from self.fresh(item for item in map(self._item, posts) if item is not None)
            cursor = next_before_id(posts, cursor)
            if cursor is None or self.listing_stalled():
                return

    def _item(self, post: dict) -> Item | None:
        if "malformed" in post:
            self.counts["malformed_posts"] += 1
            return None
        if not post.get("file_url") or not post.get("md5"):
            self.counts["hidden_posts"] += 1
            return None
        rating = keep_rating(self, post.get("rating"))
        if rating is None:
            return None
        page_url = f"{self.source.base_url}/posts/{post['id']}"
        meta = {
            "post_id": post["id"],
            "tags": post.get("tag_string") or "",
            "md5": post["md5"],
            "rating": rating,
        }
        variant = choose_variant(post, self.source.variant_min_side)
        if variant is not None:
            meta.update(variant=variant["type"], verified="decode")
            return Item(url=variant["url"], page_url=page_url, meta=meta, post_md5=post["md5"])
        meta["verified"] = "md5"
        return Item(url=post["file_url"], page_url=page_url, meta=meta, md5=post["md5"])
