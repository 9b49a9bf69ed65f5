"""Which URLs a source may fetch, and be redirected to: origins (scheme, host, port), not host names.

Comparing host names alone let a redirect from 127.0.0.1:A to 127.0.0.1:B through, and
would let an http page of a site send the crawler to any port of the same host. A source
may fetch from its own origins exactly (its base_url; each line's origin for a URL list),
from the same host upgraded to https on the default port, and from its image CDNs: the
site's own (`cdn.donmai.us`) and `[crawler] cdn_hosts`, on the scheme's default port
unless an entry names one (`host:port`). robots.txt may redirect anywhere (RFC 9309).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    """A URL that cannot be fetched at all: not http(s), no host, a port out of range, bad brackets."""


@dataclasses.dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def origin_of(url: str) -> Origin:
    """The URL's origin, or BadUrl naming what is wrong with it (urlsplit alone raises on some, not all)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", a port that is not a number
        raise BadUrl(f"{url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadUrl(f"{url!r}: only http and https URLs are fetched")
    if not parts.hostname:
        raise BadUrl(f"{url!r}: no host")
    if any(ch.isspace() for ch in url) or any(ord(ch) < 32 for ch in url):
        raise BadUrl(f"{url!r}: contains whitespace or control characters")
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


@dataclasses.dataclass(frozen=True)
class AllowedOrigins:
    exact: frozenset[Origin] = frozenset()
    cdn: frozenset[tuple[str, int | None]] = frozenset()  # (host, port); None = the scheme's default port
    anywhere: bool = False  # robots.txt only: RFC 9309 follows its redirects to other hosts

    @classmethod
    def of(cls, urls: Iterable[str], cdn_hosts: Iterable[str] = ()) -> AllowedOrigins:
        exact = set()
        for url in urls:
            try:
                exact.add(origin_of(url))
            except BadUrl:
                continue  # such a URL fails on its own when fetched; it widens nothing
        return cls(frozenset(exact), frozenset(_cdn_entry(entry) for entry in cdn_hosts if entry.strip()))

    def allows(self, url: str) -> bool:
        origin = origin_of(url)
        if self.anywhere or origin in self.exact:
            return True
        if origin.scheme == "https" and origin.port == 443:
            upgraded = {Origin("http", origin.host, 80)}
            if upgraded & self.exact:
                return True
        default = DEFAULT_PORTS[origin.scheme]
        return (origin.host, origin.port) in self.cdn or (
            origin.port == default and (origin.host, None) in self.cdn
        )

    def __or__(self, other: AllowedOrigins) -> AllowedOrigins:
        return AllowedOrigins(self.exact | other.exact, self.cdn | other.cdn, self.anywhere or other.anywhere)


def _cdn_entry(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port` or `[v6]:port`, as cdn_hosts lists them."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.partition(":")
    return (host, int(port)) if sep and port.isdigit() else (entry, None)
