"""Content hashes of files: the shard's integrity check (dedup writes it, train verifies it), the cascade pin."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in blocks (a 300k-face shard is 3.7 GB)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()
