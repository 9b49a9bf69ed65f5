"""Knowing what you look at: the viewer (every box, promote/demote, previous/next, zoom), the clusters
view's links and kept face, the `?` help, status lines that name the crop, secondary failures and the
verifier's "not run".

With REVIEW_SCREENSHOTS=DIR set, the help overlay's test also writes docs/review.md's screenshot of it
(never a screenshot of the shared third-party images the clusters test uses).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.browser import browser, console_errors, wait_for, wait_text
from tests.helpers.browser import screenshot as shot
from tests.helpers.files import jsonl_rows
from tests.helpers.review import running_app

pytest.importorskip("selenium", reason="the `test` extra installs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.by import By  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.keys import Keys  # noqa: E402 (after the importorskip)
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402 (after the importorskip)

from bench.bench_review import make_data  # noqa: E402 (after the importorskip)
from pipeline.layout import Layout  # noqa: E402 (after the importorskip)


def short(crop_id: str) -> str:
    """A crop as status lines and headers name it: 25f19a…_693_12_100_100."""
    return f"{crop_id[:6]}…{crop_id[12:]}"


def press(driver, *keys: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(*keys)


def viewing(driver, crop_id: str) -> None:
    WebDriverWait(driver, 20).until(
        lambda d: (
            d.find_element(By.ID, "viewer").get_attribute("data-id") == crop_id
            and not d.find_element(By.ID, "viewer").get_attribute("hidden")
        )
    )


def log(data: Path, which: str = "overrides_log") -> list[tuple[str, str]]:
    return [(r["id"], r["action"]) for r in jsonl_rows(getattr(Layout(data), which), missing_ok=True)]


@pytest.fixture
def synthetic(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    return {"data": data, **make_data(data, 1200)}


def test_the_viewer_draws_every_box_acts_walks_and_zooms(synthetic):
    data = synthetic["data"]
    rows = {r["id"]: r for r in jsonl_rows(Layout(data).crops_manifest)}
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=accepted&sort=id")
        cards = wait_for(driver, "#grid .card", count=3)
        ids = [c.get_attribute("data-id") for c in cards]
        first = ids[0]
        cards[0].find_element(By.CSS_SELECTOR, "button.open").click()
        viewing(driver, first)
        # Every box of the image, each in its decision's colour, the crop's own framed on top.
        same = [r for r in rows.values() if r["source_sha256"] == rows[first]["source_sha256"] and r["box"]]
        wait_for(driver, "#viewer-boxes .vbox", count=len(same))
        for r in same:
            state = "accepted" if r["decision"] == "accepted" else "rejected"
            assert driver.find_elements(By.CSS_SELECTOR, f'#viewer-boxes .vbox.{state}[data-id="{r["id"]}"]')
        # The image at the panel's size (not its own 480 px): it fills the viewport's width or height.
        fill = driver.execute_script(
            "const v = document.getElementById('viewer-viewport').getBoundingClientRect();"
            "const s = document.getElementById('viewer-stage').getBoundingClientRect();"
            "return Math.max(s.width / v.width, s.height / v.height);"
        )
        assert fill > 0.9, fill
        # d demotes the framed crop: the log, the box's colour, the status line naming it.
        press(driver, "d")
        wait_text(driver, "#status", f"demoted {short(first)} (source ")
        wait_for(driver, f'#viewer-boxes .vbox.next[data-id="{first}"]')
        assert log(data) == [(first, "demote")]
        driver.find_element(By.ID, "viewer-promote").click()
        wait_text(driver, "#status", f"promoted {short(first)}")
        assert log(data) == [(first, "demote"), (first, "promote")]
        # Previous / next walk the page; the URL names the crop shown.
        press(driver, Keys.ARROW_RIGHT)
        viewing(driver, ids[1])
        wait_text(driver, "#viewer-pos", "2 / ")
        assert f"open={ids[1]}" in driver.current_url
        press(driver, Keys.ARROW_LEFT)
        viewing(driver, first)
        # Click to zoom: the image grows past the panel, click again to fit.
        width = driver.find_element(By.ID, "viewer-stage").size["width"]
        img = driver.find_element(By.ID, "viewer-img")  # a corner: the middle may be a box (which selects it)
        ActionChains(driver).move_to_element_with_offset(
            img, 5 - width // 2, 5 - img.size["height"] // 2
        ).click().perform()
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "viewer-stage").size["width"] > width)
        press(driver, "z")
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.ID, "viewer-stage").size["width"] == width
        )
        # A link to the open viewer reopens it.
        link = driver.current_url
        driver.get("about:blank")
        driver.get(link)
        viewing(driver, first)
        press(driver, Keys.ESCAPE)
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "viewer").get_attribute("hidden"))
        assert "open=" not in driver.current_url
        assert console_errors(driver) == []


def test_a_no_face_image_opens_with_its_rejected_boxes_and_a_promote_gives_it_its_face(synthetic):
    data = synthetic["data"]
    sha = synthetic["rejected_only"][0]
    box = [r for r in jsonl_rows(Layout(data).crops_manifest) if r["source_sha256"] == sha][
        -1
    ]  # drawn on top
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=noface")
        count = driver.find_element(By.ID, "n-noface")
        wait_text(driver, "#n-noface", "(")
        before = int(count.text.strip("()"))
        wait_for(driver, f'.imgcard[data-sha="{sha}"]')[0].click()
        wait_for(driver, f'#viewer-boxes .vbox.rejected[data-id="{box["id"]}"]')[0].click()
        viewing(driver, box["id"])
        press(driver, "p")
        wait_text(driver, "#status", f"promoted {short(box['id'])} (source drawn_")
        wait_text(driver, "#n-noface", f"({before - 1})")  # the image has an accepted face now
        press(driver, Keys.ESCAPE)
        WebDriverWait(driver, 20).until(
            lambda d: not d.find_elements(By.CSS_SELECTOR, f'.imgcard[data-sha="{sha}"]')
        )
        assert log(data) == [(box["id"], "promote")]
        assert console_errors(driver) == []


def test_secondary_failures_and_the_verifier_not_run_are_said_as_such(synthetic):
    data = synthetic["data"]
    rows = jsonl_rows(Layout(data).crops_manifest)
    twice = next(r for r in rows if r["reason"] == "clipped" and len(r["values"]["failed"]) == 2)
    unverified = next(r for r in rows if r["decision"] == "accepted" and r["likelihood"] is None)
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=rejected&reason=clipped&sort=id")
        card = wait_for(driver, f'#grid .card[data-id="{twice["id"]}"]')[0]
        assert card.find_element(By.CSS_SELECTOR, ".also").text == "also: blurry"
        assert card.find_element(By.CSS_SELECTOR, ".value").text.startswith("padding ")
        # A promoted crop the verifier never saw: "verifier not run", never "likelihood –".
        card.find_element(By.CSS_SELECTOR, "button.promote").click()
        wait_text(driver, f'#grid .card[data-id="{twice["id"]}"] .state', "accepted")
        driver.get(url + f"#view=accepted&sort=likelihood&q={twice['id']}")
        wait_text(driver, f'#grid .card[data-id="{twice["id"]}"] .value', "likelihood not run")
        assert "–" not in driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{twice["id"]}"]').text
        driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{twice["id"]}"] button.open').click()
        wait_text(driver, "#viewer-meta", "verifier not run")
        assert "rules failed\nclipped, blurry" in driver.find_element(By.ID, "viewer-meta").text
        press(driver, Keys.ESCAPE)
        driver.get(url + f"#view=accepted&sort=sharpness&q={unverified['id']}")
        wait_text(driver, f'#grid .card[data-id="{unverified["id"]}"] .also.notrun', "verifier not run")
        assert console_errors(driver) == []


def test_question_mark_opens_the_keys_and_escape_closes_them(synthetic):
    with running_app(synthetic["data"]) as url, browser() as driver:
        driver.get(url + "#view=accepted")
        wait_for(driver, "#grid .card")
        assert driver.find_element(By.ID, "help-overlay").get_attribute("hidden")
        press(driver, "?")
        wait_text(driver, "#help-overlay", "similar faces")
        assert driver.find_element(By.ID, "help-overlay").is_displayed()
        shot(driver, "help")
        press(driver, Keys.ESCAPE)
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "help-overlay").is_displayed())
        driver.find_element(By.ID, "help-button").click()
        wait_text(driver, "#help-overlay", "previous / next crop")
        press(driver, "?")
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "help-overlay").is_displayed())
        press(driver, "/")  # the search box
        assert driver.switch_to.active_element.get_attribute("id") == "q"
        assert console_errors(driver) == []


def cluster_head(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, ".cluster h2").text


@pytest.mark.testdata
def test_a_split_pair_never_reads_kept_none_and_shows_dedups_link(fresh_data):
    data = fresh_data["data"]
    cluster = next(r for r in jsonl_rows(Layout(data).faces_manifest) if r["duplicates"])
    kept, other = cluster["id"], cluster["duplicates"][0]
    dropped = {r["id"]: r for r in jsonl_rows(Layout(data).dropped_log)}[other]
    with running_app(data, fresh_data["config"]) as url, browser() as driver:
        driver.get(url + "#view=clusters")
        section = wait_for(driver, ".cluster")[0]
        head = cluster_head(driver)
        assert head.startswith("2 faces · same artwork") and f"keeps {short(kept)}" in head
        member = section.find_element(By.CSS_SELECTOR, f'.card[data-id="{other}"]')
        assert member.find_element(By.CSS_SELECTOR, ".link").text == dropped["detail"]  # dedup's own words
        assert (
            member.find_element(By.CSS_SELECTOR, ".value").text
            == f"same artwork · phash {dropped['distance']}"
        )
        assert "likelihood" not in section.text
        # "Not a duplicate" on the copy: both stay, the kept one keeps its frame.
        member.find_element(By.CSS_SELECTOR, "button.split").click()
        wait_for(driver, f'.cluster .card.split[data-id="{other}"]')
        wait_for(driver, f'.cluster .card.kept[data-id="{kept}"]')
        wait_text(driver, "#status", f"split out {short(other)} (source ")
        head = cluster_head(driver)
        assert "none" not in head and f"keeps {short(kept)}" in head and "kept separately" in head
        press(driver, "u")
        wait_for(driver, f'.cluster .card.kept[data-id="{kept}"]')
        WebDriverWait(driver, 10).until(lambda d: "kept separately" not in cluster_head(d))
        # On the kept face instead: the copy becomes the kept face; then on both: all stay.
        wait_for(driver, f'.cluster .card[data-id="{kept}"] button.split')[0].click()
        wait_for(driver, f'.cluster .card.kept[data-id="{other}"]')
        wait_for(driver, f'.cluster .card.split[data-id="{kept}"]')
        assert f"keeps {short(other)}" in cluster_head(driver) and "none" not in cluster_head(driver)
        wait_for(driver, f'.cluster .card[data-id="{other}"] button.split')[0].click()
        wait_for(driver, f'.cluster .card.split[data-id="{other}"]')
        assert "all 2 faces stay" in cluster_head(driver) and "none" not in cluster_head(driver)
        assert console_errors(driver) == []
    assert log(data, "dedup_decisions_log") == [
        (other, "split"),
        (other, "clear"),
        (kept, "split"),
        (other, "split"),
    ]
