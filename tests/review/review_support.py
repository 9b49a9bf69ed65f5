"""Helpers for the review app's tests: DATA as the stages leave it, the app as a user starts it, a real browser.

A module of its own (not conftest.py), so `from review_support import ...` can never pick up
another stage's conftest. Shared images are copied into pytest's tmp dirs, never into the repo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.layout import Layout, rel_raw

REPO = Path(__file__).resolve().parents[2]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]
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


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def stage(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` as a user runs it; fails the test with its output on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{module} {args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def raw_data(data: Path, files: list[Path], titles: dict[str, str] | None = None) -> None:
    """DATA/raw/ and raw/manifest.jsonl as the crawler leaves them, for `files`."""
    rows = []
    for f in files:
        content = f.read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        ext = f.suffix.lstrip(".").lower()
        rel = rel_raw(sha, ext)
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
        rows.append(
            {
                "sha256": sha,
                "path": rel,
                "site": "testsite",
                "url": f"https://example.org/{f.name}",
                "page_url": "https://example.org/page",
                "fetched_at": "2026-01-01T00:00:00Z",
                "bytes": len(content),
                "format": ext,
                "provenance": [],
                "meta": {"title": (titles or {}).get(f.name, f.name), "character": "someone"},
            }
        )
    Layout(data).raw_manifest.parent.mkdir(parents=True, exist_ok=True)
    Layout(data).raw_manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@contextmanager
def running_app(data: Path, config: Path | None = None, *extra: str) -> Iterator[str]:
    """`python -m review` in its own process; yields the URL it printed; Ctrl-C must stop it with exit 0."""
    args = [sys.executable, "-m", "review", "--data", str(data), "--no-progress"]
    if config is not None:
        args += ["--config", str(config)]
    process = subprocess.Popen(
        [*args, *extra], cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
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


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver), or skip (fail under REQUIRE_TESTDATA=1, as CI installs both)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium and driver:
        return chromium, driver
    message = "chromium, chromium-driver and selenium are needed (apt-get install chromium chromium-driver; pip install selenium)"
    if os.environ.get("REQUIRE_TESTDATA") == "1":
        pytest.fail(f"REQUIRE_TESTDATA=1 but {message}")
    pytest.skip(message)


@contextmanager
def browser() -> Iterator:
    """A real headless Chromium through chromedriver, with its console log readable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="review-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, css: str, timeout: float = 20, count: int = 1):
    """The elements matching `css` once at least `count` are on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=_replaced()).until(
        lambda d: (found := d.find_elements(By.CSS_SELECTOR, css)) and len(found) >= count and found
    )


def wait_text(driver, css: str, text: str, timeout: float = 20) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=_replaced()).until(
        lambda d: text in d.find_element(By.CSS_SELECTOR, css).text
    )


def _replaced() -> tuple[type[Exception], ...]:
    """A card re-rendered with its new state replaces the old node: look it up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return (NoSuchElementException, StaleElementReferenceException)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def log_rows(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
