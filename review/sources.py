"""The source images behind the crops: what to call each one, and which ones a search or filter keeps.

A person knows a picture by its file name, or by the site and title it came from, and by the
character on it, never by a crop id. Every crop row carries its source's crawl provenance
(site, URL, meta) and the raw manifest has every crawled image, so each source is named
once, from the first row that mentions it, and its searchable text is kept lower-cased.
Search and filters are then array operations over sources (one source has several crops,
and a crop's words are its source's words), which keeps them within a few milliseconds at
100,000 crops.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from pipeline.manifests import safe_relative

MAX_TERMS = 8
MAX_QUERY = 200
HEX = re.compile(r"^[0-9a-f]{6,64}$")
LINKED = ("http://", "https://", "file://")  # URLs whose last part is a file name
RAW_SHA = re.compile(rb'"sha256":\s*"([0-9a-fA-F]{64})"')
WORDS = re.compile(r'"([^"]*)"|(\S+)')


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _tags(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value if isinstance(v, str | int))
    return value if isinstance(value, str) else ""


def file_name(url: Any, meta: dict[str, Any], path: Any) -> str | None:
    """The picture's own file name: the folder source's relative path, else the URL's last part."""
    relative = _text(meta.get("path"))
    if relative:
        return posixpath.basename(relative) or relative
    if isinstance(url, str) and url[:8].lower().startswith(LINKED):
        tail = url.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1]
        if tail:
            return unquote(tail) if "%" in tail else tail
    return posixpath.basename(path) if isinstance(path, str) and path else None


def picture(site: Any, url: Any, meta: Any, path: Any) -> dict[str, str | None]:
    """How a card names its picture: its title, else the booru post, else the file name (the card
    shows the site and character beside it)."""
    meta = meta if isinstance(meta, dict) else {}
    site = _text(site)
    title = _text(meta.get("title"))
    file = file_name(url, meta, path)
    post = _text(meta.get("post_id"))
    if title:
        name = title
    elif post and site:
        name = f"{site} post {post}"
    else:
        name = file or site
    return {
        "name": name,
        "file": file,
        "character": _text(meta.get("character")) or _text(meta.get("name")),
        "folder_path": _text(meta.get("path")),
    }


def search_text(site: Any, url: Any, meta: Any, path: Any) -> str:
    """What a free-text search looks in: file name (and folder path), title, character, tags, site, post.

    Not the sha256: a short word such as "3" would match nearly every one (a hex prefix is
    matched against the sha256's start instead, see `SourceTable.term`)."""
    meta = meta if isinstance(meta, dict) else {}
    parts = [
        site,
        meta.get("title"),
        meta.get("character"),
        meta.get("name"),
        file_name(url, meta, path),
        meta.get("path"),
        _tags(meta.get("tags")),
        meta.get("post_id"),
    ]
    return " ".join(str(p) for p in parts if isinstance(p, str | int) and p != "").lower()


@dataclasses.dataclass(frozen=True)
class Filter:
    """What narrows a view; every field travels in the page's URL, so a filtered view is a bookmark."""

    q: str = ""
    site: str | None = None
    image: str | None = None  # a source sha256, or a prefix of one (12+ hex digits, as crop ids start)
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Filter:
        def one(name: str) -> str | None:
            value = (query.get(name) or [""])[0].strip()
            return value or None

        return cls(
            q=(one("q") or "")[:MAX_QUERY],
            site=one("site"),
            image=(one("image") or "").lower() or None,
            lo=_float(one("lo")),
            hi=_float(one("hi")),
        )

    @property
    def terms(self) -> tuple[str, ...]:
        """The words of the search, each of which must match; "a quoted phrase" is one word."""
        found = [a or b for a, b in WORDS.findall(self.q.lower())]
        return tuple(dict.fromkeys(w for w in found if w.strip()))[:MAX_TERMS]

    @property
    def narrows_sources(self) -> bool:
        return bool(self.terms or self.site or self.image)

    def in_range(self, column: np.ndarray) -> np.ndarray | None:
        """Rows whose value lies in [lo, hi] (a missing value is outside any range), or None for no range."""
        if self.lo is None and self.hi is None:
            return None
        with np.errstate(invalid="ignore"):
            keep = ~np.isnan(column)
            if self.lo is not None:
                keep &= column >= self.lo
            if self.hi is not None:
                keep &= column <= self.hi
        return keep


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


class SourceTable:
    """Every source image the crops manifest or the raw manifest names, by code (its index here)."""

    def __init__(self) -> None:
        self.shas: list[str] = []
        self.code: dict[str, int] = {}
        self.hay: list[str] = []
        self.site_of: list[int] = []
        self.sites: list[str] = [""]  # site code -> name; 0 = unknown
        self.raw_offsets: list[int] = []  # byte offset of its raw manifest row, -1 when it has none
        self.paths: list[Any] = []  # as the manifest has it: `path(code)` checks it stays inside DATA
        self.site_codes = np.zeros(0, np.int32)
        self.raw = np.zeros(0, np.int64)
        self.cache: dict[tuple[Any, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.shas)

    def add(self, sha: str, row: dict[str, Any], path: Any) -> int:
        """The code of `sha`, naming it from `row` (site, url, meta) the first time it is seen."""
        known = self.code.get(sha)
        if known is not None:
            return known
        code = len(self.shas)
        self.code[sha] = code
        self.shas.append(sha)
        site = _text(row.get("site")) or ""
        if site not in self.sites:
            self.sites.append(site)
        self.site_of.append(self.sites.index(site) if site else 0)
        self.hay.append(search_text(site, row.get("url"), row.get("meta"), path))
        self.raw_offsets.append(-1)
        self.paths.append(path if isinstance(path, str) and path else None)
        return code

    def read_raw(self, manifest: Path) -> None:
        """Adds every image of the raw manifest (most have crops already; the rest had no face found).

        A row whose sha256 the crops already named is only located, not parsed: at 100,000 crops
        parsing every raw row again would double the start."""
        offset = 0
        if manifest.exists():
            with manifest.open("rb") as fh:
                for line in fh:
                    start, offset = offset, offset + len(line)
                    found = RAW_SHA.search(line)
                    known = self.code.get(found.group(1).decode().lower()) if found else None
                    if known is not None and self.paths[known] is not None:
                        self.raw_offsets[known] = start
                    else:
                        self._add_raw(line, start)
        self.site_codes = np.array(self.site_of, np.int32)
        self.raw = np.array(self.raw_offsets, np.int64)
        self.cache = {}

    def _add_raw(self, line: bytes, start: int) -> None:
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            return
        sha = row.get("sha256") if isinstance(row, dict) else None
        if not isinstance(sha, str) or not HEX.match(sha.lower()) or len(sha) != 64:
            return
        code = self.add(sha.lower(), row, row.get("path"))
        self.raw_offsets[code] = start
        if self.paths[code] is None and isinstance(row.get("path"), str) and row["path"]:
            self.paths[code] = row["path"]

    def path(self, code: int) -> str | None:
        """The image's path relative to DATA, or None when it has none or it would leave DATA."""
        return safe_relative(self.paths[code])

    def raw_row(self, manifest: Path, code: int) -> dict[str, Any] | None:
        """The source's raw manifest row, parsed from its own line only (None when it has none)."""
        if code >= len(self.raw) or self.raw[code] < 0:
            return None
        try:
            with manifest.open("rb") as fh:
                fh.seek(int(self.raw[code]))
                row = json.loads(fh.readline())
        except (OSError, ValueError):
            return None
        return (
            row if isinstance(row, dict) and str(row.get("sha256", "")).lower() == self.shas[code] else None
        )

    def find(self, image: str) -> int | None:
        """The source a full sha256 or a prefix of one names (None when none or several do)."""
        image = image.lower()
        if image in self.code:
            return self.code[image]
        if len(image) < 12 or not HEX.match(image):
            return None
        found = [code for sha, code in self.code.items() if sha.startswith(image)]
        return found[0] if len(found) == 1 else None

    def term(self, term: str) -> np.ndarray:
        """Sources whose text holds `term` (cached until a reload: paging a search asks again)."""
        key = ("term", term)
        if key not in self.cache:
            if len(self.cache) > 32:
                self.cache.clear()
            found = np.fromiter((term in h for h in self.hay), bool, len(self.hay))
            if HEX.match(term):  # the start of an image's sha256, as crop ids begin
                found |= np.fromiter((s.startswith(term) for s in self.shas), bool, len(self.shas))
            self.cache[key] = found
        return self.cache[key]

    def narrow(self, filt: Filter) -> np.ndarray:
        """Sources of the filter's site and image (every source when it names neither)."""
        keep = np.ones(len(self.shas), bool)
        if filt.site:
            code = self.sites.index(filt.site) if filt.site in self.sites else -1
            keep &= self.site_codes == code
        if filt.image:
            code = self.find(filt.image)
            only = np.zeros(len(self.shas), bool)
            if code is not None:
                only[code] = True
            keep &= only
        return keep

    def matching(self, filt: Filter) -> np.ndarray:
        """Sources that pass the whole filter's text, site and image."""
        keep = self.narrow(filt)
        for term in filt.terms:
            keep &= self.term(term)
        return keep

    def site_counts(self, codes: np.ndarray) -> dict[str, int]:
        """How many of `codes` (one per crop) come from each site, for the site filter's menu."""
        if not codes.size:
            return {}
        per = np.bincount(self.site_codes[codes], minlength=len(self.sites))
        return {name: int(per[k]) for k, name in enumerate(self.sites) if name and per[k]}
