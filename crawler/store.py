"""The content-addressed raw store: each distinct image once, named by its sha256.

Files live at raw/<2 hex>/<2 hex>/<sha256>.<ext> so no folder grows past a few
thousand entries, and are written atomically (temp file, fsync, rename), so a kill
leaves either the whole file or none (plus a `.tmp-` file that the next run sweeps).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline import atomic


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def relative_path(sha256: str, extension: str) -> str:
    """Path relative to the data dir, as the manifest records it."""
    return f"raw/{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"


def put(data_dir: Path, sha256: str, extension: str, data: bytes) -> str:
    """Store `data` unless the same bytes are already there; returns the relative path."""
    rel = relative_path(sha256, extension)
    target = data_dir / rel
    if not target.exists() or target.stat().st_size != len(data):
        atomic.write_bytes(target, data)
    return rel
