"""A real headless Chromium for the pages the stages write and the review app serves.

`dump_dom` runs chromium alone (`--dump-dom`: the DOM after the page's scripts ran, and its console);
`browser` drives it through chromedriver and selenium for clicks and keys. Without chromium (or
chromedriver and selenium) a test skips, or fails under REQUIRE_TESTDATA=1 or in CI, which installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from tests.helpers.shared import unavailable

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI but {message}")
    unavailable(message)


def require_chromium() -> str:
    """The chromium binary, or skip (fail under REQUIRE_TESTDATA=1 or CI)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    _missing("chromium is not installed (apt-get install chromium)")


def require_webdriver() -> tuple[str, str]:
    """(chromium, chromedriver) with selenium importable, or skip (fail under REQUIRE_TESTDATA=1 or CI)."""
    chromium = require_chromium()
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if driver is None:
        _missing(
            "chromium-driver and selenium are needed (apt-get install chromium-driver; pip install selenium)"
        )
    return chromium, driver


def dump_dom(url: str, timeout: float = 120) -> tuple[str, list[str]]:
    """The DOM of `url` after its scripts ran, and every console message the page produced."""
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [
                chromium,
                *FLAGS,
                "--enable-logging=stderr",
                "--v=0",
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@contextmanager
def browser() -> Iterator:
    """A real headless Chromium through chromedriver, with its console log readable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = require_webdriver()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, "--window-size=1280,900"]:
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
    """Until the element matching `css` shows `text`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=_replaced()).until(
        lambda d: text in d.find_element(By.CSS_SELECTOR, css).text
    )


def _replaced() -> tuple[type[Exception], ...]:
    """A card re-rendered with its new state replaces the old node: look it up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return (NoSuchElementException, StaleElementReferenceException)


def screenshot(driver, name: str) -> None:
    """With REVIEW_SCREENSHOTS=DIR set, the page as DIR/NAME.png (docs/review.md's screenshots); else nothing."""
    folder = os.environ.get("REVIEW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def console_errors(driver) -> list[str]:
    """The SEVERE entries of the page's console log."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
