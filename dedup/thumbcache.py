"""DATA/dedup/thumbs.u8: every fingerprinted crop's output-size pixels, as fixed-size raw rows.

One append-only file instead of a PNG per crop: writing 300,000 small files cost more than
hashing them. Row k starts at k * side * side * 3. A row is only referenced from SQLite
after it was written and flushed, and the next free row is derived from SQLite, so a kill
between the two leaves an unreferenced row that the next run simply overwrites.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class ThumbCache:
    def __init__(self, path: Path, side: int) -> None:
        self.path, self.side = path, side
        self.row_bytes = side * side * 3
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = None

    def reset(self) -> None:
        """Forget every row (the output size or filter changed, so all crops are hashed again)."""
        self.path.write_bytes(b"")

    def write(self, row: int, pixels: bytes) -> None:
        if len(pixels) != self.row_bytes:
            raise ValueError(f"thumbnail of {len(pixels)} bytes, expected {self.row_bytes}")
        if self.fh is None:
            self.fh = open(self.path, "r+b" if self.path.exists() else "w+b")  # noqa: SIM115 - kept open across batches
        self.fh.seek(row * self.row_bytes)
        self.fh.write(pixels)

    def flush(self) -> None:
        """Make written rows durable before SQLite starts pointing at them."""
        if self.fh is not None:
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def stamp(self) -> str:
        """Size and mtime: if they moved between two runs, something else wrote the file."""
        stat = self.path.stat() if self.path.exists() else None
        return f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""

    def row_count(self) -> int:
        """Whole rows in the file (a truncated file has fewer than the state points at)."""
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

    def rows(self) -> np.ndarray:
        """All rows, memory-mapped read-only, as uint8 [R, side, side, 3]."""
        count = self.path.stat().st_size // self.row_bytes if self.path.exists() else 0
        if count == 0:
            return np.zeros((0, self.side, self.side, 3), np.uint8)
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=(count, self.side, self.side, 3))
