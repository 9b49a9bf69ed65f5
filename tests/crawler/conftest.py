"""Fixtures for the crawler's tests: local sites that behave like the crawled ones, its config, its CLI.

The servers live in tests/helpers/sites.py and the config writer in tests/helpers/configs.py; these fixtures start them per
test, stop them after, and run `python -m crawler` as a user would.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_stage, start_stage
from tests.helpers.configs import write_crawler_config
from tests.helpers.sites import SiteServer, bomb_png, danbooru_post, serve_getchu


@pytest.fixture
def site_server() -> Iterator[Callable[..., SiteServer]]:
    """Start servers on demand (`site_server()` or `site_server("127.0.0.2", latency=0.05)`); all stop at the end."""
    servers: list[SiteServer] = []

    def start_site(address: str = "127.0.0.1", latency: float = 0.0) -> SiteServer:
        server = SiteServer(address, latency)
        servers.append(server)
        return server

    yield start_site
    for server in servers:
        server.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(sources=[{...}], crawler={...}) -> path of a dataset.toml in tmp_path."""

    def write(
        sources: list[dict[str, Any]], crawler: dict[str, Any] | None = None, name: str = "dataset.toml"
    ) -> Path:
        return write_crawler_config(tmp_path / name, sources, crawler)

    return write


@pytest.fixture
def run_crawler() -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m crawler --config C --data D --no-progress EXTRA` as a user would; returns the finished process."""

    def run(config: Path, data: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
        return run_stage("crawler", data, config, *extra, **kwargs)

    return run


@pytest.fixture
def start_crawler() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `python -m crawler --config C --data D --no-progress` (stdout dropped, stderr piped) to
    signal or kill; any still running at the end is killed."""
    started: list[subprocess.Popen] = []

    def start(config: Path, data: Path) -> subprocess.Popen:
        process = start_stage("crawler", data, config, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def bomb() -> bytes:
    return bomb_png()


@pytest.fixture(scope="session")
def small_images(testdata: Path) -> list[bytes]:
    """Real anime illustrations (the smallest of the shared full/ set), as bytes."""
    names = [
        "realesrgan__0030.jpg",
        "waifu2x__miku_noisy.jpg",
        "style2paints_v1page__style2_demo3.jpg",
        "style2paints_v1page__style1_demo3.jpg",
        "i2v__miku.jpg",
        "style2paints_v1page__style2_demo2.jpg",
        "apisr__image-00164.jpg",
        "waifu2x__miku_small.png",
    ]
    return [(testdata / "full" / name).read_bytes() for name in names]


@pytest.fixture(scope="session")
def face_images(testdata: Path) -> list[bytes]:
    """Many distinct small real face crops, for crawls that need volume."""
    return [p.read_bytes() for p in sorted((testdata / "faces").glob("*.jpg"))[:200]]


@pytest.fixture
def getchu(realsites: Path) -> Callable[..., dict[int, list[str]]]:
    """getchu(server, {product id: [image bytes]}, year=..., month=..., layout=...): see serve_getchu."""
    return functools.partial(serve_getchu, realsites=realsites)


@pytest.fixture
def make_danbooru_post() -> Callable[..., dict]:
    return danbooru_post
