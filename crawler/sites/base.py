"""What every site module builds on: its config keys, the Item it yields, the Site class.

A site declares its politeness as data (default rate, CDN hosts, extra headers) and
implements one generator, `items()`, that walks its listing through `self.pages`
(cached, rate-limited page fetches) and yields image URLs with provenance. Everything
else — robots, retries, validation, storage — is the engine's job, so adding a site
is adding one module under crawler/sites/.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from crawler.fetcher import Fetched, Fetcher, host_of
from crawler.origins import AllowedOrigins
from crawler.pages import PageCache

log = logging.getLogger("crawler")


@dataclasses.dataclass
class SourceBase:
    """Keys every source takes."""

    kind: str = ""
    max_images: int = 1000  # image URLs taken from this source's listing, in site order; 0 = no cap
    rate: float | None = None  # requests per second for this source's hosts, overriding rate_per_host
    obey_robots: bool | None = None  # None: the [crawler] obey_robots value

    def __post_init__(self) -> None:
        if self.max_images < 0:
            raise ValueError("max_images must be >= 0 (0 = no cap)")
        if self.rate is not None and self.rate < 0:
            raise ValueError("rate must be >= 0 (0 turns the limit off)")


@dataclasses.dataclass
class WebSourceBase(SourceBase):
    """Keys of sources that talk to a site; `base_url` lets a mirror or a local server stand in."""

    base_url: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        self.base_url = self.base_url.rstrip("/")


@dataclasses.dataclass
class Item:
    """One image URL a listing produced, with where it was found and what the site said about it."""

    url: str
    page_url: str
    meta: dict[str, Any]
    md5: str | None = None  # when the site publishes it, the downloaded bytes must match
    # The md5 the site publishes for the post's original file, whichever file is fetched (a resized
    # variant has no md5 of its own): a picture whose md5 is already in the store is not fetched.
    post_md5: str | None = None

    def __post_init__(self) -> None:
        self.md5 = self.md5.lower() if self.md5 else None
        self.post_md5 = self.post_md5.lower() if self.post_md5 else self.md5


class Site:
    kind: ClassVar[str] = ""
    Config: ClassVar[type[SourceBase]] = SourceBase
    default_rate: ClassVar[float | None] = None  # a site-documented limit stricter than rate_per_host
    cdn_hosts: ClassVar[tuple[str, ...]] = ()  # where the site's own image files live
    # Said when every listing page answered but none could be read (exit 6).
    changed_hint: ClassVar[str] = (
        "the site's API answers in a shape this crawler does not read; it needs an update"
    )
    credential_names: ClassVar[tuple[str, ...]] = ()  # account keys, from the environment or credentials_file
    # The site's rating values in the one vocabulary (sites/ratings.py).
    rating_names: ClassVar[Mapping[str, str]] = {}
    # Why the default [crawler] user_agent will not do for this site; "" when it will.
    user_agent_rule: ClassVar[str] = ""

    def __init__(
        self, source: Any, fetcher: Fetcher, pages: PageCache, credentials: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.fetcher = fetcher
        self.pages = pages
        self.credentials = dict(credentials or {})
        self.counts: Counter[str] = Counter()  # site-specific skips, shown in the summary
        self.obey_robots = obeys_robots(source, fetcher.config.obey_robots)
        self._allowed: AllowedOrigins | None = None
        self._listed: set[str] = set()
        self._stale_pages = 0

    def hosts(self) -> set[str]:
        """Host names this source's requests go to, for the per-host rate limit."""
        base = getattr(self.source, "base_url", "")
        return ({host_of(base)} if base else set()) | set(self.cdn_hosts)

    def allowed(self) -> AllowedOrigins:
        """Origins this source may fetch from and be redirected to: its own, its CDNs, [crawler].cdn_hosts."""
        if self._allowed is None:
            base = getattr(self.source, "base_url", "")
            self._allowed = AllowedOrigins.of(
                [base] if base else [], [*self.cdn_hosts, *self.fetcher.config.cdn_hosts]
            )
        return self._allowed

    @classmethod
    def check_settings(cls, source: Any, credentials: Mapping[str, str]) -> None:
        """Raise ValueError for a source its settings and credentials cannot crawl, before any request."""

    def check(self) -> None:
        """Raise FileNotFoundError (or ValueError) for a source that cannot work at all, before crawling."""

    def headers(self) -> dict[str, str]:
        return {}

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def listing(self) -> Iterator[Item]:
        """`items()`, then the rule every site shares: a listing that answered but could not be read
        at all stops the source as `site_changed` (`PageCache.check_read`)."""
        yield from self.items()
        self.pages.check_read(self.kind, self.changed_hint)

    def fresh(self, items: Iterable[Item]) -> list[Item]:
        """One listing page's items not listed before; counts the page as stale when none is new.

        An API that answers "more pages" forever, or pages of hidden posts without end, would
        otherwise keep a listing going long after max_images stopped mattering."""
        new = [item for item in items if item.url not in self._listed]
        self._listed.update(item.url for item in new)
        self.page_added(bool(new))
        return new

    def page_added(self, added: bool) -> None:
        """Count a listing page as stale when it added nothing new (for a site that cannot use `fresh`)."""
        self._stale_pages = 0 if added else self._stale_pages + 1

    def listing_stalled(self) -> bool:
        limit = self.fetcher.config.max_stale_pages
        if self._stale_pages < limit:
            return False
        self.counts["listing_stalled"] += 1
        log.warning(
            "%s: %d listing pages in a row added no new image; the listing ends here", self.kind, limit
        )
        return True

    def download(self, item: Item, max_bytes: int) -> Fetched:
        headers = dict(self.headers())
        if item.page_url.startswith(("http://", "https://")):
            headers["Referer"] = item.page_url  # image hosts often refuse hotlinks without one
        return self.fetcher.get(
            item.url, self.allowed(), headers=headers, max_bytes=max_bytes, obey_robots=self.obey_robots
        )


def next_before_id(records: list[dict], cursor: int | None) -> int | None:
    """The next "posts before this id" cursor of a booru listing: the page's smallest id, or None
    when the listing is over (no ids on the page, or ids that do not go below the last cursor)."""
    ids = [record["id"] for record in records if isinstance(record.get("id"), int)]
    if not ids or (cursor is not None and min(ids) >= cursor):
        return None
    return min(ids)


def obeys_robots(source: SourceBase, crawler_default: bool) -> bool:
    return crawler_default if source.obey_robots is None else source.obey_robots
