"""The content-addressed raw store: each distinct image once, named by its sha256.

Files live where `pipeline.layout.rel_raw` says (raw/<2 hex>/<2 hex>/<sha256>.<ext>),
and are written atomically (temp file, fsync, rename), so a kill
leaves either the whole file or none (plus a `.tmp-` file that the next run sweeps).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline import atomic
from pipeline.layout import rel_raw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(data_dir: Path, sha256: str, extension: str, data: bytes) -> str:
    """Store `data` unless the same bytes are already there; returns the relative path."""
    rel = rel_raw(sha256, extension)
    target = data_dir / rel
    if not target.exists() or target.stat().st_size != len(data):
        atomic.write_bytes(target, data)
    return rel
