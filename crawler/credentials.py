"""Site accounts: read from the environment or a file outside the config, and never written anywhere.

dataset.toml is shared, committed and copied into dataset cards; an API key in it would travel
with it, so a source table that names one is refused and keys come from `<KIND>_<NAME>`
environment variables (DANBOORU_API_KEY) or `[crawler] credentials_file`, a TOML file with one
table per site. Each secret value is registered here as it is loaded, and every text the crawler
writes from a request (FetchError details, page failures, log lines) passes `redact`, so a key a
site or a library echoes back (a URL in a connection error, a body quoting it) is never printed
or stored. Requests carry keys in a header (Danbooru) or in query parameters added by the fetcher
at send time (Gelbooru), never in the URL the crawler keeps.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.errors import ConfigError

log = logging.getLogger("crawler")
SECRET_NAMES = frozenset({"api_key", "password"})  # values redacted wherever text is written
MASK = "***"
MIN_SECRET = 8

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def env_name(kind: str, name: str) -> str:
    return f"{kind}_{name}".upper()


class Credentials(dict):
    """{kind: {name: value}}; its repr names what is set, never a value (a Settings repr, a traceback)."""

    def __repr__(self) -> str:
        shown = "; ".join(f"{kind}: {', '.join(sorted(values))}" for kind, values in sorted(self.items()))
        return f"Credentials({shown})"

    __str__ = __repr__


def register_secret(value: str) -> None:
    """From now on `redact` hides `value` in every text the crawler writes."""
    with _secrets_lock:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    if not _secrets or not text:
        return text
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Applied to the crawler's log records: the formatted message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """On every handler of the root logger (a record from any logger passes one) and on the crawler's
    own logger, for a handler added later."""
    for target in [*logging.getLogger().handlers, logging.getLogger("crawler")]:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def load_credentials(
    wanted: Mapping[str, Iterable[str]],
    known: Mapping[str, Iterable[str]],
    file: str,
    config_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The configured sites' credentials: `<KIND>_<NAME>` from the environment over the file's
    `[kind]` table. `wanted` is {kind: credential names} of the configured sources, `known` the same
    for every site; a file table or key outside `known` is a config error naming the key, never a value."""
    environ = os.environ if environ is None else environ
    from_file = _read_file(file, config_dir, known) if file else {}
    found = Credentials()
    for kind, names in wanted.items():
        values = {}
        for name in names:
            value = (environ.get(env_name(kind, name)) or from_file.get(kind, {}).get(name) or "").strip()
            if not value:
                continue
            if name in SECRET_NAMES:
                if len(value) < MIN_SECRET:  # masking so short a string would garble ordinary text
                    raise ConfigError(
                        f"{env_name(kind, name)} is shorter than {MIN_SECRET} characters: not a real {name}"
                    )
                register_secret(value)
            values[name] = value
        if values:
            found[kind] = values
    if found:
        install_log_filter()
    return found


def _read_file(file: str, config_dir: Path, known: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
    path = Path(file).expanduser()
    path = path if path.is_absolute() else config_dir / path
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"[crawler] credentials_file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # The parser's message may quote the offending line, which may hold a key: name only the file.
        raise ConfigError(
            f"[crawler] credentials_file {path}: cannot be read as TOML ({type(exc).__name__})"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users; `chmod 600 %s` keeps your API keys yours", path, path)
    names_of = {kind: set(names) for kind, names in known.items()}
    result: dict[str, dict[str, str]] = {}
    for kind, values in table.items():
        if kind not in names_of:
            raise ConfigError(
                f"{path}: [{kind}] is not a site that takes credentials ({', '.join(sorted(names_of))})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {kind} must be a table ([{kind}]) of credentials")
        for name, value in values.items():
            if name not in names_of[kind]:
                raise ConfigError(f"{path}: [{kind}] takes {', '.join(sorted(names_of[kind]))}, not {name}")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ConfigError(f"{path}: [{kind}] {name} must be a string")
            result.setdefault(kind, {})[name] = str(value)
    return result
