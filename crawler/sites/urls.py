"""A text file of image URLs, one per line (blank lines and # comments ignored).

Each URL's own origin is allowed; redirects elsewhere are not (unless in cdn_hosts). A line
that is not a fetchable URL (a space, a bad port, another scheme) fails alone as `bad_url`;
a file that is not UTF-8 text is refused before crawling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from crawler.fetcher import host_of
from crawler.origins import AllowedOrigins, BadUrl, origin_of
from crawler.sites.base import Item, Site, SourceBase


@dataclasses.dataclass
class UrlsConfig(SourceBase):
    file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.file:
            raise ValueError('a urls source needs file = "urls.txt"')


class Urls(Site):
    kind = "urls"
    Config = UrlsConfig
    _hosts: set[str] | None = None
    _lines_cache: list[tuple[int, str]] | None = None

    def check(self) -> None:
        if not Path(self.source.file).is_file():
            raise FileNotFoundError(f"urls source: {self.source.file} is not a file")
        data = Path(self.source.file).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"urls source: {self.source.file} is not a UTF-8 text file of URLs ({exc})"
            ) from exc
        if b"\x00" in data:
            raise ValueError(f"urls source: {self.source.file} is a binary file, not a text file of URLs")
        self._check_some_url()

    def _check_some_url(self) -> None:
        """At least one line must be a fetchable URL; otherwise name the first line and what is wrong with it."""
        first: tuple[int, BadUrl] | None = None
        for number, url in self._lines():
            try:
                origin_of(url)
                return
            except BadUrl as exc:
                first = first or (number, exc)
        if first is not None:
            number, exc = first
            raise ValueError(
                f"urls source: no line of {self.source.file} is an http(s) URL; "
                f"{self.source.file}:{number}: {exc}"
            )

    def _lines(self) -> list[tuple[int, str]]:
        if self._lines_cache is not None:
            return self._lines_cache
        text = Path(self.source.file).read_text(encoding="utf-8", errors="replace")
        self._lines_cache = [
            (number, line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")
        ]
        return self._lines_cache

    def hosts(self) -> set[str]:
        if self._hosts is None:  # asked once per download, so read the file once
            self._hosts = {host_of(url) for _, url in self._lines()} - {""}
        return self._hosts

    def allowed(self) -> AllowedOrigins:
        """Each line's own origin (a malformed line adds nothing and fails alone as bad_url)."""
        if self._allowed is None:
            self._allowed = AllowedOrigins.of(
                [url for _, url in self._lines()], [*self.cdn_hosts, *self.fetcher.config.cdn_hosts]
            )
        return self._allowed

    def items(self) -> Iterator[Item]:
        page_url = Path(self.source.file).as_uri()
        for number, url in self._lines():
            yield Item(url=url, page_url=page_url, meta={"line": number})
