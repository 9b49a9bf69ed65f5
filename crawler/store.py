"""The content-addressed raw store: each distinct image once, named by its sha256.

Files live where `pipeline.layout.rel_raw` says (raw/<2 hex>/<2 hex>/<sha256>.<ext>),
and are written atomically (temp file, fsync, rename), so a kill
leaves either the whole file or none (plus a `.tmp-` file that the next run sweeps).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import atomic
from pipeline.digest import file_digest
from pipeline.layout import rel_raw

if TYPE_CHECKING:
    from crawler.state import State

logger = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5_hex(data: bytes) -> str:
    """Beside the sha256: the hash boorus publish, so a post already stored is never fetched again."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def put(data_dir: Path, sha256: str, extension: str, data: bytes) -> str:
    """Store `data` unless the same bytes are already there; returns the relative path."""
    rel = rel_raw(sha256, extension)
    target = data_dir / rel
    if not target.exists() or target.stat().st_size != len(data):
        atomic.write_bytes(target, data)
    return rel


def check_store(state: State, data_dir: Path, verify: bool = False) -> list[str]:
    """sha256 of stored images whose file is gone, has another size than when it was stored, or
    (`verify`) no longer hashes to its name. Each is forgotten (its file removed, its URLs pending
    again), so this crawl fetches it again."""
    bad = []
    for image in state.images():
        path = data_dir / image["path"]
        try:
            size = path.stat().st_size
        except OSError:
            bad.append(image["sha256"])
            continue
        if size != image["bytes"] or (verify and file_digest(path) != image["sha256"]):
            path.unlink()
            bad.append(image["sha256"])
    if bad:
        logger.warning(
            "%d stored image(s) missing or damaged, e.g. %s; fetching them again",
            len(bad),
            data_dir / rel_raw(bad[0], "*"),
        )
        state.unstore(bad)
    return bad


def backfill_md5(state: State, data_dir: Path) -> int:
    """Give every image stored before images carried an md5 its md5, read from its file (once: the
    value is kept). A file that cannot be read is left to `check_store`, which fetches it again."""
    done = 0
    for image in state.images():
        if image["md5"]:
            continue
        try:
            md5 = md5_hex((data_dir / image["path"]).read_bytes())
        except OSError:
            continue
        state.set_md5(image["sha256"], md5)
        done += 1
    if done:
        logger.info("recorded the md5 of %d image(s) stored before md5s were kept", done)
    return done
