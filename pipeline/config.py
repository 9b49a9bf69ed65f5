"""Reading the one TOML file every stage shares.

Each stage owns its section as a dataclass; this module only knows the top-level
shape and how to turn a TOML table into a dataclass strictly. Unknown keys are an
error everywhere, because a typo that is silently ignored looks exactly like a
setting that does nothing.

Every stage loads its section the same way, `<stage>.config.load(table) -> Config`, from the
`ConfigTable` that `read_config` returns; command-line overrides are written into the table
before loading, so they pass the same checks as the file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import ConfigError

KNOWN_SECTIONS = ("crawler", "sources", "facecrop", "dedup", "train")

T = TypeVar("T")


class ConfigTable(dict):
    """The parsed file, remembering where it was read: relative paths in it (a folder source, say)
    mean "beside the config file", not "wherever the shell happens to be"."""

    def __init__(self, table: dict[str, Any], path: Path) -> None:
        super().__init__(table)
        self.path = path


def read_config(path: str | Path) -> ConfigTable:
    """Parse the TOML file and reject unknown top-level sections.

    A missing file is an error rather than "all defaults" so that a mistyped
    `--config` path cannot quietly crawl the default sites.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --config FILE or CONFIG=FILE to make)")
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be saved as UTF-8"
        ) from exc
    unknown = sorted(set(table) - set(KNOWN_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; expected only {', '.join(KNOWN_SECTIONS)}"
        )
    if "sources" in table and not isinstance(table["sources"], list):
        raise ConfigError(f"{path}: 'sources' must be an array of tables ([[sources]])")
    for name in ("crawler", "facecrop", "dedup", "train"):
        if name in table and not isinstance(table[name], dict):
            raise ConfigError(f"{path}: '{name}' must be a table ([{name}])")
    return ConfigTable(table, path)


def section(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The table for one stage, empty when the file leaves it out (all defaults)."""
    return dict(config.get(name, {}))


def build(cls: type[T], table: dict[str, Any], where: str) -> T:
    """Make dataclass `cls` from a TOML table, refusing unknown keys and wrong types.

    `where` names the table in error messages (e.g. "[facecrop]" or "[[sources]] #2").
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {known}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_hint = args[0] if args else Any
        items = [_coerce(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float:
        # TOML spells nan and inf; no setting means anything with them (a NaN threshold makes every
        # comparison false, so a guard silently switches off), so the rule is here, once, for every float.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return build(hint, value, where)
    return value
