"""Cleaning a dataset by clicking alone: the real app in a real headless Chromium, then the real stages.

Promote a reject, demote two accepted crops and undo one, keep one face of a cluster instead and
split it; then the logs hold exactly those decisions, and facecrop and dedup, re-run through their
CLIs, produce a shard that reflects every one of them.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.browser import browser, console_errors, wait_for, wait_text
from tests.helpers.cli import run_stage
from tests.helpers.crops import read_crops_manifest
from tests.helpers.files import jsonl_rows
from tests.helpers.review import HOSTILE, running_app

pytest.importorskip("selenium", reason="the `test` extra installs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.keys import Keys  # noqa: E402 (after the importorskip)

from pipeline.layout import Layout, rel_reject  # noqa: E402 (after the importorskip)

pytestmark = [pytest.mark.testdata, pytest.mark.slow]


def crops_by_id(data) -> dict[str, dict]:
    return {row["id"]: row for row in read_crops_manifest(data)}


def card(driver, crop_id: str):
    return wait_for(driver, f'#grid .card[data-id="{crop_id}"]')[0]


def test_clicks_reach_the_logs_and_the_next_run_honours_every_one(fresh_data):
    data, config = fresh_data["data"], fresh_data["config"]
    rows = crops_by_id(data)
    rejects = [r for r in rows.values() if r["decision"] == "rejected" and r.get("crop_box")]
    accepted = sorted(r["id"] for r in rows.values() if r["decision"] == "accepted")
    cluster = next(
        row
        for row in map(json.loads, Layout(data).faces_manifest.read_text().splitlines())
        if row["duplicates"]
    )
    was_kept, other = cluster["id"], cluster["duplicates"][0]
    promoted = rejects[0]["id"]
    demoted, undone = [i for i in accepted if i not in (was_kept, other)][:2]
    layout = Layout(data)

    with running_app(data, config) as url, browser() as driver:
        assert url.startswith("http://127.0.0.1:") and "token=" in url
        driver.get(url)
        # Rejects: the reason, its rule, and the crawled <script> title as text.
        wait_text(driver, "#rule", "not_verified: likelihood < 0.5")
        assert any(HOSTILE in c.text for c in wait_for(driver, "#grid .card .src"))
        assert driver.execute_script("return document.scripts.length") == 1
        card(driver, promoted).find_element(By.CSS_SELECTOR, "button.promote").click()
        wait_text(driver, f'#grid .card[data-id="{promoted}"] .state', "accepted")

        # Accepted: demote one with its button, one with the keyboard, undo the last with `u`.
        driver.find_element(By.ID, "tab-accepted").click()
        card(driver, demoted).find_element(By.CSS_SELECTOR, "button.demote").click()
        wait_text(driver, f'#grid .card[data-id="{demoted}"] .state', "rejected: manual")
        card(driver, undone).click()
        driver.find_element(By.TAG_NAME, "body").send_keys("d")
        wait_text(driver, f'#grid .card[data-id="{undone}"] .state', "rejected: manual")
        driver.find_element(By.TAG_NAME, "body").send_keys("u")
        wait_text(driver, f'#grid .card[data-id="{undone}"] .state', "accepted")
        wait_text(driver, "#status", "undone")

        # Clusters: keep the other copy instead (the mark moves at once), then say the first is not a duplicate.
        driver.find_element(By.ID, "tab-clusters").click()
        wait_for(driver, f'.cluster .card.kept[data-id="{was_kept}"]')
        card(driver, other).find_element(By.CSS_SELECTOR, "button.keep").click()
        wait_for(driver, f'.cluster .card.kept[data-id="{other}"]')
        card(driver, was_kept).find_element(By.CSS_SELECTOR, "button.split").click()
        wait_for(driver, f'.cluster .card.split[data-id="{was_kept}"]')

        # The source view of a crop: the image under DATA, the box drawn where the manifest says.
        card(driver, other).find_element(By.CSS_SELECTOR, "button.open").click()
        wait_for(driver, "#viewer:not([hidden])")
        src = driver.find_element(By.ID, "viewer-img").get_attribute("src")
        assert src.endswith("/file/" + rows[other]["source_path"])
        style = driver.find_element(By.ID, "viewer-box").get_attribute("style")
        left = float(style.split("left:")[1].split("%")[0])
        assert left == pytest.approx(100 * rows[other]["box"][0] / rows[other]["source_size"][0], rel=1e-3)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        assert console_errors(driver) == []

    overrides = [
        (r["id"], r["action"], r["reason"]) for r in jsonl_rows(layout.overrides_log, missing_ok=True)
    ]
    assert overrides == [
        (promoted, "promote", None),
        (demoted, "demote", "manual"),
        (undone, "demote", "manual"),
        (undone, "clear", None),
    ]
    assert [(r["id"], r["action"]) for r in jsonl_rows(layout.dedup_decisions_log, missing_ok=True)] == [
        (other, "keep"),
        (was_kept, "split"),
    ]

    run_stage("facecrop", data, config, cascade=fresh_data["cascade"], check=True)
    after = crops_by_id(data)
    assert after[promoted]["decision"] == "accepted" and after[promoted]["override"] == "promote"
    assert after[demoted]["decision"] == "rejected" and after[demoted]["path"] == rel_reject(
        "manual", demoted
    )
    assert after[undone]["decision"] == "accepted" and after[undone]["override"] is None
    run_stage("dedup", data, config, check=True)
    shard = json.loads(layout.shard_json.read_text())
    assert set(shard["ids"]) == (set(accepted) - {demoted}) | {promoted}
    faces = {row["id"]: row for row in map(json.loads, layout.faces_manifest.read_text().splitlines())}
    assert faces[was_kept]["cluster_size"] == 1 and "not a duplicate" in faces[was_kept]["kept_because"]
    assert faces[other]["cluster_size"] == 1


def test_keep_this_one_instead_changes_the_face_in_the_shard(fresh_data):
    """A "keep" through the app's own write path, then dedup: the other copy leaves the shard."""
    data, config = fresh_data["data"], fresh_data["config"]
    layout = Layout(data)
    cluster = next(
        row for row in map(json.loads, layout.faces_manifest.read_text().splitlines()) if row["duplicates"]
    )
    was_kept, other = cluster["id"], cluster["duplicates"][0]
    with running_app(data, config) as url, browser() as driver:
        driver.get(url + "#view=clusters")
        card(driver, other).find_element(By.CSS_SELECTOR, "button.keep").click()
        wait_for(driver, f'.cluster .card.kept[data-id="{other}"]')
        driver.find_element(By.TAG_NAME, "body").send_keys("u")  # undo, then keep again with the keyboard
        wait_for(driver, f'.cluster .card.kept[data-id="{was_kept}"]')
        card(driver, other).click()
        driver.find_element(By.TAG_NAME, "body").send_keys("k")
        wait_for(driver, f'.cluster .card.kept[data-id="{other}"]')
    assert [(r["id"], r["action"]) for r in jsonl_rows(layout.dedup_decisions_log, missing_ok=True)] == [
        (other, "keep"),
        (other, "clear"),
        (other, "keep"),
    ]
    run_stage("dedup", data, config, check=True)
    ids = json.loads(layout.shard_json.read_text())["ids"]
    assert other in ids and was_kept not in ids
    faces = {row["id"]: row for row in map(json.loads, layout.faces_manifest.read_text().splitlines())}
    assert faces[other]["duplicates"] == [was_kept] and "chose to keep" in faces[other]["kept_because"]
