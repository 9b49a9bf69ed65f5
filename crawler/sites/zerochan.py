"""Zerochan: the tag listing with `?json`, then one post request per image for its full file.

What the real site does (recorded responses in ../shared/realsites/zerochan): a listing,
`/<Tag>?json&p=N&l=L`, is `{"items": [...]}` whose entries name no image file, only a
thumbnail; the full file and its md5 (`full`, `hash`) come from the post, `/<id>?json`. So an
image costs two requests, and the post request goes through the same rate limit, robots.txt
and cache as every page: a resumed crawl asks for no post twice. Zerochan's API page asks for
60 requests a minute at most and a User-Agent naming the project and the user's Zerochan name
("may be banned for being anonymous"): the default rate is 0.8/s and the config refuses the
default user_agent for this source. Tags are Zerochan's own, Title Case ("Hatsune Miku"),
several joined by commas. Zerochan has no ratings.

One client (booru-rs) strips a `next: true` written without quotes after the list; such a body
is read the same way here, and `next` (when given) says whether another page follows.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

from crawler.fetcher import Fetched
from crawler.sites.base import Item, Site, WebSourceBase
from crawler.sites.fields import MD5, Malformed, expect, field, load_json, records

BARE_NEXT = re.compile(rb",\s*next\s*:\s*(true|false)\s*}\s*$")
DEFAULT_RATE = 0.8  # requests per second: the API page allows 60 a minute; this leaves headroom


@dataclasses.dataclass
class ZerochanConfig(WebSourceBase):
    base_url: str = "https://www.zerochan.net"
    tags: list[str] = dataclasses.field(default_factory=lambda: ["Female", "Solo"])
    per_page: int = 24

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tags or any(not t.strip() for t in self.tags):
            raise ValueError('tags must be a non-empty list of Zerochan tags, e.g. ["Hatsune Miku"]')
        if not 1 <= self.per_page <= 250:
            raise ValueError("per_page must be 1..250 (Zerochan's limit per request)")


def parse_listing(fetched: Fetched) -> dict:
    """One listing page: its entries' ids (an entry with a wrong field becomes {"malformed": why})."""
    body = fetched.body
    match = BARE_NEXT.search(body)
    if match:
        body = body[: match.start()] + b', "next": ' + match.group(1) + b"}"
    page = expect(load_json(dataclasses.replace(fetched, body=body)), dict, "the body", fetched)
    entries = records(fetched, page.get("items") or [], _entry_fields, "entry")
    more = page.get("next")
    return {"entries": entries, "next": more if isinstance(more, bool) else None}


def _entry_fields(entry: object) -> dict:
    return {"id": field(entry, "id", int, required=True), "tag": field(entry, "tag", str)}


def parse_post(fetched: Fetched) -> dict:
    """One post: its full file and md5; a post without a usable one becomes {"malformed": why}
    (kept, like a malformed post of a listing: that is the site's answer for this post)."""
    post = expect(load_json(fetched), dict, "the body", fetched)
    try:
        row = {
            "id": field(post, "id", int, required=True),
            "full": field(post, "full", str, required=True),
            "hash": field(post, "hash", str),
            "primary": field(post, "primary", str),
            "tags": field(post, "tags", list) or [],
        }
    except Malformed as exc:
        return {"malformed": str(exc)}
    if row["hash"] is not None and not MD5.match(row["hash"]):
        return {"malformed": f"hash {row['hash'][:40]!r} is not 32 hex digits"}
    if not row["full"].startswith(("http://", "https://")):
        return {"malformed": f"full {row['full'][:80]!r} is not an http(s) URL"}
    row["tags"] = [tag for tag in row["tags"] if isinstance(tag, str)]
    return row


class Zerochan(Site):
    kind = "zerochan"
    Config = ZerochanConfig
    default_rate = DEFAULT_RATE
    cdn_hosts = ("static.zerochan.net",)
    user_agent_rule = (
        "Zerochan asks every client to name itself: set [crawler] user_agent to your project and your "
        'Zerochan username, e.g. "anime-face-pipeline - YourName" (https://www.zerochan.net/api)'
    )

    def items(self) -> Iterator[Item]:
        path = ",".join(quote_plus(tag.strip()) for tag in self.source.tags)
        seen: set[int] = set()
        page = 1
        while True:
            url = f"{self.source.base_url}/{path}?json&p={page}&l={self.source.per_page}"
            listing = self.pages.get(url, parse_listing, self.allowed(), volatile=page == 1)
            if not listing or not listing["entries"]:
                return
            entries = [e for e in listing["entries"] if "malformed" in e or e["id"] not in seen]
            seen.update(e["id"] for e in entries if "id" in e)
            self.page_added(any("id" in e for e in entries))
            # One at a time: the engine stops pulling at max_images, so no post beyond it is asked for.
            for entry in entries:
                item = self._item(entry)
                if item is not None:
                    yield item
            if listing["next"] is False or self.listing_stalled():
                return
            page += 1

    def _item(self, entry: dict) -> Item | None:
        if "malformed" in entry:
            self.counts["malformed_entries"] += 1
            return None
        page_url = f"{self.source.base_url}/{entry['id']}"
        post = self.pages.get(f"{page_url}?json", parse_post, self.allowed())
        if post is None:
            return None  # failed this run (counted with the pages); asked again next run
        return self._from_post(entry, post, page_url)

    def _from_post(self, entry: dict, post: dict[str, Any], page_url: str) -> Item | None:
        if "malformed" in post:
            self.counts["malformed_posts"] += 1
            return None
        if post["id"] != entry["id"]:
            self.counts["malformed_posts"] += 1  # the answer is another post's
            return None
        meta = {
            "post_id": post["id"],
            "tag": post["primary"] or entry.get("tag") or "",
            "tags": post["tags"],
            "md5": post["hash"],
            "verified": "md5" if post["hash"] else "decode",
        }
        return Item(url=post["full"], page_url=page_url, meta=meta, md5=post["hash"])
