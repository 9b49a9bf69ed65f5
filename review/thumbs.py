"""Small thumbnails of crops, made on first request and kept in a bounded in-memory cache.

Crops are stored at source resolution (often 300-1000 px, up to a few MB as PNG); a page
shows 100 of them at 142 px. Scaling each once to THUMB_SIDE and sending a JPEG of a few
kB keeps a page light however large the crops are, and writes nothing to DATA.
"""

from __future__ import annotations

import collections
import io
import threading
from pathlib import Path

from PIL import Image

THUMB_SIDE = 160
CACHE_ENTRIES = 4096  # ~10 kB each: ~40 MB at most


class Thumbs:
    """path -> JPEG bytes, least recently used dropped first; keyed on the file's mtime and size too."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self.cache: collections.OrderedDict[tuple[str, int, int], bytes] = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path) -> bytes | None:
        """The thumbnail of the image at `path`, or None when it cannot be read as an image."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        try:
            with Image.open(path) as img:
                img.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
                small = img.convert("RGB")
                small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
                out = io.BytesIO()
                small.save(out, "JPEG", quality=85)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        data = out.getvalue()
        with self.lock:
            self.cache[key] = data
            while len(self.cache) > self.entries:
                self.cache.popitem(last=False)
        return data
