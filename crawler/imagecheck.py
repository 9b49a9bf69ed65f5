"""Is this really an image we can use? Judged from the bytes, never from URL or Content-Type.

Pillow identifies the format from the file's magic bytes (each plugin's signature
check), its decompression-bomb guard stays on, and the whole file is decoded so a
truncated download is caught here rather than in facecrop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

FORMATS = {"JPEG": ("jpeg", "jpg"), "PNG": ("png", "png"), "WEBP": ("webp", "webp"), "GIF": ("gif", "gif")}


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str  # jpeg | png | webp | gif
    extension: str
    width: int
    height: int


def looks_like_html(data: bytes) -> bool:
    """No supported image format starts with '<'; markup (an error page, a login wall) always does."""
    return data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def check_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Return the image's format and size, or raise ImageRejected with a reason code."""
    if not data:
        raise ImageRejected("empty")
    if looks_like_html(data):
        raise ImageRejected("html", "an HTML/XML page was served where an image was expected")
    try:
        # Above 2x MAX_IMAGE_PIXELS Pillow raises; between 1x and 2x it only warns, and the
        # explicit max_pixels check below rejects those too.
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("not_image", str(exc)) from exc
    with image:
        if image.format not in FORMATS:
            raise ImageRejected("unsupported_format", str(image.format))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected("decompression_bomb", f"{width}x{height} is more than {max_pixels} pixels")
        if image.format == "JPEG":
            # Decode at 1/8 scale: every byte of entropy-coded data is still read (so a
            # truncated file still fails) but the costly full-size IDCT is skipped.
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise ImageRejected(
                "truncated_image" if "truncated" in str(exc) else "undecodable", str(exc)
            ) from exc
        name, extension = FORMATS[image.format]
        return ImageInfo(name, extension, width, height)
