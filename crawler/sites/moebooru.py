"""Moebooru (Konachan, yande.re): `post.json` walked by `page` and `limit`.

What the real site does (recorded konachan.com response in ../shared/realsites/moebooru): a
bare list of posts, each with `file_url` (the original, PNG or JPEG), `jpeg_url` (a JPEG of the
same size: a converted copy for a PNG original, the original itself otherwise), `sample_url`,
the original's `md5` and `rating` as s/q/e, where `s` is *safe* (read as `s`, sites/ratings.py).

Pages are walked until one comes back empty (a short page is not proof of the end: the site
may leave held posts out of a page). `variant` chooses `file_url` or `jpeg_url`. The md5 is checked when the URL taken is the
original (`jpeg_url` equals `file_url` for a JPEG original); a converted JPEG is verified by a
full decode instead, and the post's md5 still names the picture, so a copy already stored from
another site is not fetched. konachan.net (the default) is the all-ages mirror of konachan.com;
yande.re is the same software (`base_url`), its files on files.yande.re.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote_plus

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site
from crawler.sites.fields import load_json, post_fields, records
from crawler.sites.ratings import MOEBOORU, RatedSourceBase, keep_rating


@dataclasses.dataclass
class MoebooruConfig(RatedSourceBase):
    base_url: str = "https://konachan.net"
    tags: str = ""  # Moebooru's tags are its own (no 1girl on Konachan); "" lists every post, newest first
    per_page: int = 100
    # jpeg_url: a full-size JPEG, a fraction of a PNG original's bytes, which spares the site's bandwidth
    variant: Literal["file_url", "jpeg_url"] = "jpeg_url"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.per_page <= 100:
            raise ValueError("per_page must be 1..100 (Moebooru's limit per request)")


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "md5": str,
    "file_url": str,
    "jpeg_url": str,
    "tags": str,
    "rating": str,
    "width": int,
    "height": int,
}


def parse_posts(fetched: Fetched) -> list[dict]:
    """The posts of one post.json page; a post with a wrong field becomes {"malformed": why}."""
    return records(fetched, load_json(fetched), _post_fields)


def _post_fields(post: object) -> dict:
    return post_fields(post, FIELD_TYPES)


class Moebooru(Site):
    kind = "moebooru"
    Config = MoebooruConfig
    cdn_hosts = ("files.yande.re",)
    rating_names = MOEBOORU

    def items(self) -> Iterator[Item]:
        page = 1
        while True:
            url = (
                f"{self.source.base_url}/post.json?tags={quote_plus(self.source.tags.strip())}"
                f"&limit={self.source.per_page}&page={page}"
            )
            posts = self.pages.get(url, parse_posts, self.allowed(), volatile=page == 1)
            if not posts:
                return
            yield from self.fresh(item for item in map(self._item, posts) if item is not None)
            if self.listing_stalled():
                return
            page += 1

    def _item(self, post: dict) -> Item | None:
        if "malformed" in post:
            self.counts["malformed_posts"] += 1
            return None
        original = post.get("file_url")
        if not original or not post.get("md5"):
            self.counts["posts_without_file"] += 1  # deleted and held posts come without a file
            return None
        rating = keep_rating(self, post.get("rating"))
        if rating is None:
            return None
        url = post.get(self.source.variant) or original
        tags = (post.get("tags") or "").strip()
        meta = {"post_id": post["id"], "tags": tags, "md5": post["md5"], "rating": rating}
        page_url = f"{self.source.base_url}/post/show/{post['id']}"
        if url == original:
            meta["verified"] = "md5"
            return Item(url=url, page_url=page_url, meta=meta, md5=post["md5"])
        meta.update(variant="jpeg", verified="decode")
        return Item(url=url, page_url=page_url, meta=meta, post_md5=post["md5"])
