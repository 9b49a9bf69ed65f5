"""A local directory tree of images the user already has: no network, same checks and store.

Every regular file is considered (hidden files and folders are skipped) and judged by
its bytes like a download, so a stray .txt is recorded as not_image, not silently lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crawler.fetcher import Fetched, FetchError
from crawler.sites.base import Item, Site, SourceBase


@dataclasses.dataclass
class FolderConfig(SourceBase):
    path: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError('a folder source needs path = "DIR"')


class Folder(Site):
    kind = "folder"
    Config = FolderConfig

    def check(self) -> None:
        if not Path(self.source.path).is_dir():
            raise FileNotFoundError(f"folder source: {self.source.path} is not a directory")

    def items(self) -> Iterator[Item]:
        root = Path(self.source.path)
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            yield Item(url=path.as_uri(), page_url=root.as_uri(), meta={"path": relative.as_posix()})

    def download(self, item: Item, max_bytes: int) -> Fetched:
        path = Path(unquote(urlsplit(item.url).path))
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise FetchError("too_large", f"{path} has {size} bytes > {max_bytes}")
            return Fetched(item.url, 200, {}, path.read_bytes())
        except OSError as exc:
            raise FetchError("unreadable", f"{path}: {exc}") from exc
