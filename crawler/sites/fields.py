"""Reading API JSON defensively: every value a site module uses is checked for its type.

Real APIs change shape and hostile servers send anything (lists of nulls, an integer md5,
`media_asset` as a string, JSON nested 200,000 deep). A body whose overall shape is wrong
makes the page `unparseable` (PageRejected: recorded with its URL, never cached, the run
goes on); one record with a wrong field is `Malformed` and the site skips just that record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from crawler.fetcher import Fetched
from crawler.pages import PageRejected

MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class Malformed(ValueError):
    """One record (a post, a character) that does not have the fields its site needs."""


def post_fields(post: Any, kinds: dict[str, type | tuple[type, ...]], md5_key: str | None = "md5") -> dict:
    """A booru post's integer id and its `kinds` fields, each checked for its type; the published md5
    (`md5_key`) must be 32 hex digits, since it decides whether a stored file is the same picture."""
    row = {"id": field(post, "id", int, required=True)}
    row.update({key: field(post, key, kind) for key, kind in kinds.items()})
    checksum = row.get(md5_key) if md5_key else None
    if checksum is not None and not MD5.match(checksum):
        raise Malformed(f"{md5_key} {checksum[:40]!r} is not 32 hex digits")
    return row


def load_json(fetched: Fetched) -> Any:
    try:
        return json.loads(fetched.body)
    except RecursionError as exc:
        raise PageRejected("unparseable", f"{fetched.url}: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PageRejected("unparseable", f"{fetched.url}: not JSON ({exc})") from exc


def expect(value: Any, kind: type | tuple[type, ...], what: str, fetched: Fetched) -> Any:
    """The page-level shape: a value that is not `kind` makes the whole page unparseable."""
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _kinds(kind):
        raise PageRejected(
            "unparseable", f"{fetched.url}: {what} is {type(value).__name__}, expected {_names(kind)}"
        )
    return value


def field(record: Any, key: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
    """record[key] if it is `kind` (None when absent and not required); Malformed otherwise."""
    if not isinstance(record, dict):
        raise Malformed(f"a record is {type(record).__name__}, not an object")
    value = record.get(key)
    if value is None:
        if required:
            raise Malformed(f"{key} is missing")
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _kinds(kind):
        raise Malformed(f"{key} is {type(value).__name__}, expected {_names(kind)}")
    return value


def records(fetched: Fetched, body: Any, parse: Callable[[Any], dict], what: str = "post") -> list[dict]:
    """A JSON list of records parsed one by one; a record that does not fit becomes {"malformed": why}.

    A list in which no entry is an object at all is not a page of records: unparseable."""
    items = expect(body, list, "the body", fetched)
    if items and not any(isinstance(item, dict) for item in items):
        raise PageRejected("unparseable", f"{fetched.url}: a list without one {what} object")
    parsed = []
    for item in items:
        try:
            parsed.append(parse(item))
        except Malformed as exc:
            parsed.append({"malformed": str(exc)})
    return parsed


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _kinds(kind))
