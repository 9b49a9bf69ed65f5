"""A text file of image URLs, one per line (blank lines and # comments ignored).

Each URL's own host is allowed; redirects elsewhere are not (unless in cdn_hosts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from crawler.fetcher import host_of
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

    def check(self) -> None:
        if not Path(self.source.file).is_file():
            raise FileNotFoundError(f"urls source: {self.source.file} is not a file")

    def _lines(self) -> list[tuple[int, str]]:
        text = Path(self.source.file).read_text(encoding="utf-8", errors="replace")
        return [
            (number, line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")
        ]

    def hosts(self) -> set[str]:
        if self._hosts is None:  # asked once per download, so read the file once
            self._hosts = {host_of(url) for _, url in self._lines()} - {""}
        return self._hosts

    def items(self) -> Iterator[Item]:
        page_url = Path(self.source.file).as_uri()
        for number, url in self._lines():
            yield Item(url=url, page_url=page_url, meta={"line": number})
