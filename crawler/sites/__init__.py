"""The site registry: every module in this package defines one `Site` subclass, found by its `kind`."""

from __future__ import annotations

import importlib
import pkgutil

from crawler.sites.base import Site

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

SITES: dict[str, type[Site]] = {cls.kind: cls for cls in Site.__subclasses__() if cls.kind}
