"""Safebooru (Gelbooru 0.2 dapi): a bare JSON list per request, deep results by an `id:<N` cursor.

What the real site does (recorded response in ../shared/realsites/safebooru): `directory`
may be an integer and older responses have no `file_url`, so the image URL is always
built as `/images/<directory>/<image>` (the same URL `file_url` gives when present).
`pid` paging is capped by the site, so every request asks for pid=0 below the smallest
id seen so far. An empty result is an empty body, not `[]`. The post's `hash` is the
md5 of the file and is checked; a mismatch is fetched once more, then final. Ratings are
words (`general`, older posts `safe`), kept by `ratings` in the one vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import quote_plus

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, next_before_id
from crawler.sites.fields import Malformed, field, load_json, records
from crawler.sites.ratings import WORDS, RatedSourceBase, keep_rating


@dataclasses.dataclass
class SafebooruConfig(RatedSourceBase):
    # ratings came after this site's first crawls and only filters cached pages: not in the state's key
    key_omits: ClassVar[tuple[str, ...]] = ("ratings",)
    base_url: str = "https://safebooru.org"
    tags: str = "1girl solo"
    per_page: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.per_page <= 1000:
            raise ValueError("per_page must be 1..1000")


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "directory": (int, str),
    "image": str,
    "hash": str,
    "tags": str,
    "width": int,
    "height": int,
    "rating": str,
}


def parse_posts(fetched: Fetched) -> list[dict]:
    """The posts of one dapi page; a post with a wrong field becomes {"malformed": why}."""
    if not fetched.body.strip():
        return []
    return records(fetched, load_json(fetched), _post_fields)


def _post_fields(post: object) -> dict:
    row = {"id": field(post, "id", (int, str), required=True)}
    if not str(row["id"]).isdigit():
        raise Malformed(f"id {row['id']!r} is not a number")
    row["id"] = int(row["id"])
    row.update({key: field(post, key, kind) for key, kind in FIELD_TYPES.items()})
    return row


class Safebooru(Site):
    kind = "safebooru"
    Config = SafebooruConfig
    rating_names = WORDS

    def items(self) -> Iterator[Item]:
        base = self.source.base_url
        cursor = None
        while True:
            tags = self.source.tags if cursor is None else f"{self.source.tags} id:<{cursor}"
            url = (
                f"{base}/index.php?page=dapi&s=post&q=index&json=1&tags={quote_plus(tags.strip())}"
                f"&pid=0&limit={self.source.per_page}"
            )
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
        if post.get("directory") in (None, "") or not post.get("image"):
            self.counts["posts_without_file"] += 1
            return None
        if keep_rating(self, post.get("rating")) is None:
            return None
        base = self.source.base_url
        meta = {"post_id": post["id"], "tags": (post.get("tags") or "").strip(), "md5": post.get("hash")}
        meta["verified"] = "md5" if post.get("hash") else "decode"
        return Item(
            url=f"{base}/images/{post['directory']}/{post['image']}",
            page_url=f"{base}/index.php?page=post&s=view&id={post['id']}",
            meta=meta,
            md5=post.get("hash") or None,
        )
