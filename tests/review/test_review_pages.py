"""The views on a synthetic DATA (drawn faces, no shared art): selection, shortcuts, sorting, pages.

With REVIEW_SCREENSHOTS=DIR set, this test also writes docs/review.md's screenshots of each view
(`REVIEW_SCREENSHOTS=docs/review .venv/bin/python -m pytest tests/review/test_review_pages.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.browser import browser, console_errors, screenshot, wait_for, wait_text
from tests.helpers.files import jsonl_rows
from tests.helpers.review import http, running_app

pytest.importorskip("selenium", reason="the `test` extra installs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.by import By  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.keys import Keys  # noqa: E402 (after the importorskip)

from bench.bench_review import make_data  # noqa: E402 (after the importorskip)
from pipeline.layout import Layout  # noqa: E402 (after the importorskip)


def ids_on_page(driver) -> list[str]:
    return [c.get_attribute("data-id") for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card")]


@pytest.fixture
def synthetic(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    return {"data": data, **make_data(data, 1200)}


def test_select_a_range_promote_by_key_undo_and_page_through(synthetic):
    data = synthetic["data"]
    log = Layout(data).overrides_log
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=rejected&reason=blurry")
        wait_text(driver, "#rule", "blurry: sharpness < 100")
        cards = wait_for(driver, "#grid .card", count=2)
        page = ids_on_page(driver)
        assert len(page) == min(100, sum(1 for _ in page))
        values = [float(c.find_element(By.CSS_SELECTOR, ".value").text.split()[1]) for c in cards]
        assert values == sorted(values)  # the deciding value, worst first
        screenshot(driver, "rejects")
        # Click the 3rd card, Shift+click the 7th: five selected; `p` promotes them.
        cards[2].click()
        ActionChains(driver).key_down(Keys.SHIFT).click(cards[6]).key_up(Keys.SHIFT).perform()
        wait_text(driver, "#selection", "5 selected")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("p")
        wait_text(driver, "#status", "promoted 5")
        for crop_id in page[2:7]:
            wait_text(driver, f'#grid .card[data-id="{crop_id}"] .state', "accepted")
        assert [(r["id"], r["action"]) for r in jsonl_rows(log, missing_ok=True)] == [
            (i, "promote") for i in page[2:7]
        ]
        count = driver.find_element(By.CSS_SELECTOR, '#reasons button[data-reason="blurry"] .n').text.strip()
        total = int(json.loads(http(url.split("?")[0] + "api/summary")[1])["rejected"]["blurry"])
        assert int(count) == total  # the counts follow at once
        # Undo with Ctrl+Z: the five come back as rejects (one `clear` row each).
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
        for crop_id in page[2:7]:
            wait_text(driver, f'#grid .card[data-id="{crop_id}"] .state', "rejected: blurry")
        assert [r["action"] for r in jsonl_rows(log, missing_ok=True)][5:] == ["clear"] * 5

        # Accepted, sorted by blur worst first; select all on the page with `a`; next page with `]`.
        driver.find_element(By.TAG_NAME, "body").send_keys("2")
        wait_text(driver, "#rule", "Accepted crops")
        driver.find_element(By.CSS_SELECTOR, "#sort option[value='sharpness']").click()
        wait_text(driver, "#grid .card .value", "sharpness")
        sharp = [
            float(c.text.split()[1]) for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .value")
        ]
        assert sharp == sorted(sharp) and len(sharp) == 100
        screenshot(driver, "accepted")
        first = ids_on_page(driver)
        driver.find_element(By.TAG_NAME, "body").send_keys("a")
        wait_text(driver, "#selection", "100 selected")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        assert driver.find_element(By.ID, "selection").text == ""
        driver.find_element(By.TAG_NAME, "body").send_keys("]")
        wait_text(driver, "#page-info", "101–200 of")
        assert not set(ids_on_page(driver)) & set(first)
        assert "offset=100" in driver.current_url  # a page is a link
        later = [
            float(c.text.split()[1]) for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .value")
        ]
        assert min(later) >= max(sharp)
        # Thumbnails are lazy links, never inline data.
        imgs = driver.find_elements(By.CSS_SELECTOR, "#grid img.thumb")
        assert all(i.get_attribute("loading") == "lazy" and "/thumb/" in i.get_attribute("src") for i in imgs)

        # The source view of one crop, then the clusters view with the kept face marked.
        driver.find_elements(By.CSS_SELECTOR, "#grid .card button.open")[0].click()
        wait_for(driver, "#viewer:not([hidden]) #viewer-img")
        driver.execute_script(
            "return new Promise(r => { const i = document.getElementById('viewer-img');"
            " i.complete ? r() : i.onload = r; })"
        )
        screenshot(driver, "source")
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        driver.find_element(By.TAG_NAME, "body").send_keys("3")
        kept = wait_for(driver, ".cluster .card.kept")
        assert len(kept) == len(driver.find_elements(By.CSS_SELECTOR, ".cluster"))
        screenshot(driver, "clusters")
        assert console_errors(driver) == []
