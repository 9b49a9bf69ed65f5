"""The crawler's settings: `[crawler]` here, each `[[sources]]` table by its site's `Config`.

Every key has a default (documented in docs/crawler.md) and `pipeline.config.build`
rejects unknown keys, so a typo in dataset.toml fails loudly instead of doing nothing.
Relative paths in `folder`/`urls` sources are resolved against the config file's folder,
so a config means the same thing whatever directory `make` runs from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from crawler.credentials import Credentials, env_name, load_credentials
from crawler.sites import SITES
from crawler.sites.base import SourceBase
from pipeline.config import build, section
from pipeline.errors import ConfigError

DEFAULT_USER_AGENT = "anime-face-pipeline/0.1 (+https://example.invalid/contact-me)"

# Every duration setting, in seconds, and whether 0 is allowed. A wait of 0 is meaningless for a
# timeout, a deadline, a backoff or a checkpoint; for max_retry_after and max_crawl_delay 0 means
# "never wait: skip the URL or the host this run". Negative is meaningless for all.
DURATIONS: dict[str, bool] = {
    "connect_timeout": False,
    "read_timeout": False,
    "request_deadline": False,
    "backoff": False,
    "max_backoff": False,
    "max_retry_after": True,
    "max_crawl_delay": True,
    "checkpoint_seconds": False,
}
# A day: longer is a unit slip (milliseconds for seconds), and beyond about 292 years a thread's
# wait cannot even be expressed (threading.TIMEOUT_MAX).
MAX_SECONDS = 86_400.0


@dataclasses.dataclass
class CrawlerConfig:
    """Politeness and safety limits shared by every source."""

    user_agent: str = DEFAULT_USER_AGENT
    rate_per_host: float = 1.0  # requests per second per host name; 0 turns the limit off
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # seconds of silence
    request_deadline: float = 60.0  # wall-clock seconds for one request: connect, headers and body
    retries: int = 4  # tries after the first one, for connection errors, 429 and 5xx
    backoff: float = 1.0  # first backoff in seconds; doubles per try, plus up to the same again as jitter
    max_backoff: float = 60.0  # the longest wait between two tries, jitter included
    max_retry_after: float = 300.0  # a longer Retry-After fails the URL for this run instead of stalling it
    max_bytes: int = 20_000_000  # per image (and per listing page), enforced while streaming
    max_pixels: int = 89_478_485  # Pillow's own decompression-bomb threshold
    max_redirects: int = 5
    max_crawl_delay: float = (
        60.0  # a robots.txt Crawl-delay above this skips the host (reason crawl_delay_too_long)
    )
    max_stale_pages: int = 5  # a listing ends after this many pages in a row that add no new image
    cdn_hosts: list[str] = dataclasses.field(default_factory=list)  # extra hosts any source may redirect to
    workers: int = 16  # download threads; the per-host rate limit, not this, bounds load on a site
    obey_robots: bool = True
    checkpoint_seconds: float = 30.0  # how often the manifest is rewritten during a long crawl
    credentials_file: str = ""  # a TOML file of site accounts outside the config ([danbooru] login, api_key)

    def __post_init__(self) -> None:
        if not self.user_agent.strip():
            raise ValueError("user_agent must not be empty: sites need to know who is crawling them")
        if not math.isfinite(self.rate_per_host) or self.rate_per_host < 0:
            raise ValueError(
                f"rate_per_host must be a finite number >= 0 (0 turns the limit off), got {self.rate_per_host}"
            )
        for name, zero_ok in DURATIONS.items():
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
            if value < 0 or (value == 0 and not zero_ok) or value > MAX_SECONDS:
                floor = ">= 0" if zero_ok else "> 0"
                raise ValueError(f"{name} must be {floor} and <= {MAX_SECONDS:g} seconds, got {value:g}")
        if self.max_backoff < self.backoff:
            raise ValueError(f"max_backoff ({self.max_backoff:g}) must be >= backoff ({self.backoff:g})")
        # One check per key, so the message names only the key that is wrong.
        for name, floor in (("max_stale_pages", 1), ("max_redirects", 0), ("retries", 0)):
            if getattr(self, name) < floor:
                raise ValueError(f"{name} must be >= {floor}, got {getattr(self, name)}")
        for name in ("max_bytes", "max_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.workers <= 256:
            raise ValueError("workers must be between 1 and 256")


@dataclasses.dataclass
class Settings:
    crawler: CrawlerConfig
    sources: list[SourceBase]
    credentials: Credentials = dataclasses.field(default_factory=Credentials)  # {kind: {name: value}}


def load(config: dict[str, Any]) -> Settings:
    """Turn the parsed TOML into checked settings; errors name the source's index and kind. Relative
    paths resolve against the config file's folder (`ConfigTable.path`; the working directory for a
    table that was not read from a file)."""
    config_path = getattr(config, "path", None) or Path("dataset.toml")
    crawler = build(CrawlerConfig, section(config, "crawler"), "[crawler]")
    tables = config.get("sources", [])
    if not tables:
        raise ConfigError(
            f"{config_path}: no [[sources]] configured; add at least one (see docs/crawler.md, Sources)"
        )
    sources = [_source(index, table, config_path) for index, table in enumerate(tables, start=1)]
    known = {kind: cls.credential_names for kind, cls in SITES.items() if cls.credential_names}
    wanted = {s.kind: known[s.kind] for s in sources if s.kind in known}
    credentials = load_credentials(wanted, known, crawler.credentials_file, config_path.parent)
    for index, source in enumerate(sources, start=1):
        site = SITES[source.kind]
        where = f"[[sources]] #{index} (kind = {source.kind!r})"
        if site.user_agent_rule and crawler.user_agent.strip() == DEFAULT_USER_AGENT:
            raise ConfigError(f"{where}: {site.user_agent_rule}")
        try:
            site.check_settings(source, credentials.get(source.kind, {}))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return Settings(crawler=crawler, sources=sources, credentials=credentials)


def _source(index: int, table: Any, config_path: Path) -> SourceBase:
    if not isinstance(table, dict):
        raise ConfigError(f"[[sources]] #{index}: must be a table")
    kind = table.get("kind")
    where = f"[[sources]] #{index} (kind = {kind!r})"
    if kind not in SITES:
        raise ConfigError(f"{where}: kind must be one of {', '.join(sorted(SITES))}")
    for name in SITES[kind].credential_names:
        if name in table:  # never echo the value: the line goes to logs and terminals
            raise ConfigError(
                f"{where}: {name} does not belong in the config file, which is shared with the dataset; "
                f"set {env_name(kind, name)} or put it in [crawler] credentials_file (docs/crawler.md, Accounts)"
            )
    source = build(SITES[kind].Config, table, where)
    for attr in ("path", "file"):
        value = getattr(source, attr, None)
        if value:
            setattr(source, attr, str((config_path.parent / Path(value).expanduser()).resolve()))
    return source


def source_key(source: SourceBase) -> str:
    """A stable identity for a source: what it lists, not how much or how fast.

    Changing max_images or rate keeps the crawl state; changing tags or years starts a new listing.
    A key a site gained later that only filters its listing client-side (`key_omits`) is left out,
    so the state crawled before it keeps its identity.
    """
    omitted = ("max_images", "rate", *getattr(type(source), "key_omits", ()))
    fields = {k: v for k, v in dataclasses.asdict(source).items() if k not in omitted}
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return f"{source.kind}-{digest}"
