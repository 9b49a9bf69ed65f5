"""Gelbooru (the current dapi with `json=1`): deep results by an `id:<N` cursor, as Safebooru.

What the real site does (recorded response in ../shared/realsites/gelbooru): the body is an
object, `{"@attributes": {limit, offset, count}, "post": [...]}`, where Safebooru's older
dapi answers a bare list; an empty result leaves `post` out. Each post carries `file_url`
(on the img*.gelbooru.com hosts), the file's `md5` (checked), and its rating as a word
(`general`, `sensitive`, `questionable`, `explicit`). `pid` paging is capped by the site, so
every request asks for pid=0 below the smallest id seen so far.

Since 2025 gelbooru.com answers 401 to API requests without an account (clients report it;
not recorded here): `api_key` and `user_id` come from GELBOORU_API_KEY / GELBOORU_USER_ID or
the credentials file, and are added to each listing request's query by the fetcher as it is
sent, so the URL the crawler caches, logs and stores never holds them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

from crawler.fetcher import Fetched, host_of
from crawler.sites.base import Item, Site, next_before_id
from crawler.sites.fields import expect, load_json, post_fields, records
from crawler.sites.ratings import WORDS, RatedSourceBase, keep_rating

log = logging.getLogger("crawler")


@dataclasses.dataclass
class GelbooruConfig(RatedSourceBase):
    base_url: str = "https://gelbooru.com"
    tags: str = "1girl solo"
    per_page: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.per_page <= 100:
            raise ValueError("per_page must be 1..100")


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "md5": str,
    "file_url": str,
    "directory": str,
    "image": str,
    "tags": str,
    "rating": str,
    "width": int,
    "height": int,
}


def parse_posts(fetched: Fetched) -> list[dict]:
    """The posts of one dapi page; a post with a wrong field becomes {"malformed": why}."""
    body = expect(load_json(fetched), dict, "the body", fetched)
    expect(body.get("@attributes", {}), dict, "@attributes", fetched)
    if body.get("post") is None:  # how the site answers a search with no (more) results
        return []
    return records(fetched, body["post"], _post_fields)


def _post_fields(post: object) -> dict:
    return post_fields(post, FIELD_TYPES)


class Gelbooru(Site):
    kind = "gelbooru"
    Config = GelbooruConfig
    cdn_hosts = ("img1.gelbooru.com", "img2.gelbooru.com", "img3.gelbooru.com", "img4.gelbooru.com")
    credential_names = ("api_key", "user_id")
    rating_names = WORDS

    @classmethod
    def check_settings(cls, source: Any, credentials: Mapping[str, str]) -> None:
        if len(credentials) == 1:
            missing = "GELBOORU_USER_ID" if "api_key" in credentials else "GELBOORU_API_KEY"
            raise ValueError(f"an account needs both api_key and user_id; {missing} is not set")

    def check(self) -> None:
        if not self.credentials and host_of(self.source.base_url).endswith("gelbooru.com"):
            log.warning(
                "gelbooru: no GELBOORU_API_KEY / GELBOORU_USER_ID; gelbooru.com has answered API requests "
                "without an account with 401 since 2025 (docs/crawler.md, Accounts)"
            )

    def items(self) -> Iterator[Item]:
        cursor = None
        while True:
            tags = self.source.tags if cursor is None else f"{self.source.tags} id:<{cursor}"
            url = (
                f"{self.source.base_url}/index.php?page=dapi&s=post&q=index&json=1"
                f"&tags={quote_plus(tags.strip())}&pid=0&limit={self.source.per_page}"
            )
            posts = self.pages.get(
                url,
                parse_posts,
                self.allowed(),
                volatile=cursor is None,
                secret_params=self.credentials or None,
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
        url = post.get("file_url")
        if not url and post.get("directory") and post.get("image"):
            url = f"{self.source.base_url}/images/{post['directory']}/{post['image']}"
        if not url or not post.get("md5"):
            self.counts["posts_without_file"] += 1
            return None
        rating = keep_rating(self, post.get("rating"))
        if rating is None:
            return None
        meta = {
            "post_id": post["id"],
            "tags": (post.get("tags") or "").strip(),
            "md5": post["md5"],
            "rating": rating,
            "verified": "md5",
        }
        page_url = f"{self.source.base_url}/index.php?page=post&s=view&id={post['id']}"
        return Item(url=url, page_url=page_url, meta=meta, md5=post["md5"])
