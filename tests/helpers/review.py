"""The review app as a user starts it, and requests to it with exactly the headers a test sets.

FILES is the smallest shared-image DATA with every view of the app populated; HOSTILE is the title
one of its sources gets, to check that crawled text stays text.
"""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.helpers.cli import start_cli

URL_LINE = re.compile(r"^review: (http://\S+)$", re.M)
HOSTILE = "<script>alert(1)</script>"
# Two copies of one artwork (a duplicate cluster), three more faces, and photos whose false
# detections are rejected: the smallest DATA with every view populated.
FILES = [
    "full/waifu2x__miku_bg.png",
    "full/waifu2x__miku_noisy.jpg",
    "full/style2paints_refs__1.png",
    "full/style2paints_refs__12.png",
    "full/animegan__anime_image_misaka_mikoto.png",
    "negative/gfpgan_realphoto__00.jpg",
]


@contextmanager
def running_app(data: Path, config: Path | None = None, *extra: str) -> Iterator[str]:
    """`python -m review` in its own process; yields the URL it printed; Ctrl-C must stop it with exit 0."""
    args = ["--data", str(data), "--no-progress", *(["--config", str(config)] if config is not None else [])]
    process = start_cli("review", *args, *extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = process.stdout.readline()
        match = URL_LINE.match(line.strip())
        assert match, f"no URL line: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, f"Ctrl-C did not stop the app cleanly: {process.returncode}\n{err}"
    assert "stopped" in out


def url_parts(url: str) -> tuple[str, str, str]:
    """(base URL, host:port, token) of the URL the app printed."""
    split = urlsplit(url)
    return f"http://{split.netloc}", split.netloc, parse_qs(split.query)["token"][0]


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request with exactly these headers (urllib adds only Host, which tests may override)."""
    request = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
