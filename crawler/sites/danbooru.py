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

Its robots.txt disallows `/*.json`, so with obey_robots on, this source stops at its
first listing request; Danbooru documents the JSON API for clients, and a user who
accepts its terms sets `obey_robots = false` on the source (docs/crawler.md, robots.txt).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from urllib.parse import quote_plus

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, WebSourceBase, next_before_id
from crawler.sites.fields import Malformed, field, load_json, records

RATINGS = ("g", "s", "q", "e")  # general, sensitive, questionable, explicit


@dataclasses.dataclass
class DanbooruConfig(WebSourceBase):
    base_url: str = "https://danbooru.donmai.us"
    tags: str = "1girl solo"
    per_page: int = 200
    variant_min_side: int = (
        512  # smallest resized variant whose shorter side is >= this; 0 = always originals
    )
    ratings: list[str] = dataclasses.field(default_factory=lambda: ["g", "s"])  # kept, by the post's rating

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.tags.split()) > 2:
            raise ValueError(f"danbooru allows 2 tags in an anonymous search, got {self.tags!r}")
        if not 1 <= self.per_page <= 200:
            raise ValueError("per_page must be 1..200")
        if self.variant_min_side < 0:
            raise ValueError("variant_min_side must be >= 0")
        if not self.ratings or any(r not in RATINGS for r in self.ratings):
            raise ValueError(f"ratings must be a non-empty list of {', '.join(RATINGS)}, got {self.ratings}")


MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
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
    row = {"id": field(post, "id", int, required=True)}
    row.update({key: field(post, key, kind) for key, kind in FIELD_TYPES.items()})
    if row["md5"] is not None and not MD5.match(row["md5"]):
        raise Malformed(f"md5 {row['md5'][:40]!r} is not 32 hex digits")
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

    def items(self) -> Iterator[Item]:
        base = self.source.base_url
        cursor = None
        while True:
            url = f"{base}/posts.json?tags={quote_plus(self.source.tags)}&limit={self.source.per_page}"
            if cursor is not None:
                url += f"&page=b{cursor}"
            posts = self.pages.get(url, parse_posts, self.allowed(), volatile=cursor is None)
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
        if post.get("rating") not in self.source.ratings:
            self.counts[f"rating_{post.get('rating')}_skipped"] += 1
            return None
        page_url = f"{self.source.base_url}/posts/{post['id']}"
        meta = {
            "post_id": post["id"],
            "tags": post.get("tag_string") or "",
            "md5": post["md5"],
            "rating": post["rating"],
        }
        variant = choose_variant(post, self.source.variant_min_side)
        if variant is not None:
            meta.update(variant=variant["type"], verified="decode")
            return Item(url=variant["url"], page_url=page_url, meta=meta)
        meta["verified"] = "md5"
        return Item(url=post["file_url"], page_url=page_url, meta=meta, md5=post["md5"])
