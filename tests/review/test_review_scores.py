"""The "accepted, by the discriminator" view: accepted crops ranked by a trained D's score, lowest first.

On the DATA real facecrop and dedup runs leave (five accepted crops, four of them in the shard: one
is a duplicate). The scores files are written with `pipeline.scores.write_scores`, the function
`train score` itself writes them with, so they are exactly what the app gets from a run; the last
test makes one with a real (tiny) training run and `animefaces score`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.layout import Layout, RunLayout
from pipeline.scores import Score, write_scores
from tests.helpers.browser import browser, console_errors, wait_for, wait_text
from tests.helpers.cli import one_line, run_cli, run_stage
from tests.helpers.crops import read_crops_manifest
from tests.helpers.files import jsonl_rows
from tests.helpers.review import http, running_app, url_parts
from tests.helpers.train import run_train, train_args, write_train_config

pytest.importorskip("selenium", reason="the `test` extra installs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402 (after the importorskip)
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402 (after the importorskip)

pytestmark = [pytest.mark.testdata, pytest.mark.slow]

HOW = "animefaces score --ckpt runs/NAME/best.pt"


def write_run_scores(runs: Path, run: str, scores: dict[str, float], step: int = 7) -> Path:
    """runs/RUN/scores.jsonl as `train score` writes it, with the given score per crop id."""
    layout = RunLayout.of(runs, run)
    checkpoint = str(layout.best)
    write_scores(layout.scores, [Score(i, v, checkpoint, "D", step) for i, v in scores.items()])
    return layout.scores


def crops(data: Path) -> dict[str, list[str]]:
    rows = read_crops_manifest(data)
    return {
        "accepted": sorted(r["id"] for r in rows if r["decision"] == "accepted"),
        "rejected": sorted(r["id"] for r in rows if r["decision"] != "accepted" and r.get("crop_box")),
        "shard": json.loads(Layout(data).shard_json.read_text())["ids"],
    }


def grid_ids(driver) -> list[str]:
    return [c.get_attribute("data-id") for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card")]


def wait_ids(driver, expected: list[str]) -> None:
    WebDriverWait(driver, 20).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "#grid[aria-busy]") and grid_ids(d) == expected
    )


def read_row(data: Path, crop_id: str) -> dict:
    return next(r for r in read_crops_manifest(data) if r["id"] == crop_id)


def get_json(base: str, host: str, path: str) -> tuple[int, dict]:
    status, body = http(base + path, headers={"Host": host})
    return status, json.loads(body) if body.startswith(b"{") else {}


@pytest.fixture
def scored(fresh_data: dict, tmp_path: Path) -> dict:
    """Known scores for the shard's faces (as `train score` leaves them: the duplicate dedup dropped has
    none), plus a stale row for a rejected crop and one for a crop that is gone; an older run's file
    that the newer one must win over."""
    data = fresh_data["data"]
    ids = crops(data)
    assert len(ids["shard"]) == 4 and len(ids["accepted"]) == 5
    values = dict(zip(sorted(ids["shard"]), [1.5, -2.0, 0.25, -0.75], strict=True))
    runs = tmp_path / "runs"
    older = write_run_scores(runs, "older", {i: 0.0 for i in ids["shard"]}, step=3)
    os.utime(older, (1_000_000_000, 1_000_000_000))
    stale = {ids["rejected"][0]: -9.0, "0123456789ab_1_2_3_3": -8.0}
    path = write_run_scores(runs, "newer", {**values, **stale})
    order = sorted(values, key=values.get)  # lowest first
    return {**fresh_data, **ids, "runs": runs, "path": path, "older": older, "values": values, "order": order}


def test_the_view_ranks_by_score_and_a_demote_there_leaves_the_shard(scored):
    data, config, order = scored["data"], scored["config"], scored["order"]
    layout = Layout(data)
    with running_app(data, config, "--runs-dir", str(scored["runs"])) as url, browser() as driver:
        driver.get(url)
        wait_for(driver, "#grid .card")
        driver.find_element(By.TAG_NAME, "body").send_keys("5")  # the view's key
        wait_ids(driver, order)
        assert "view=scored" in driver.current_url
        first = driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{order[0]}"] .value').text
        assert first == "D score -2"
        info = driver.find_element(By.ID, "scores-file").text
        assert str(scored["path"]) in info and str(scored["older"]) not in info
        assert f"D of {RunLayout(scored['path'].parent).best}, step 7" in info
        assert "6 faces scored" in info and "1 accepted crop without a score" in info
        assert "2 scores ignored" in info
        assert driver.find_element(By.ID, "n-scored").text == "(4)"

        # Demote the lowest with its button, the next with a click and `d`.
        driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{order[0]}"] button.demote').click()
        wait_text(driver, f'#grid .card[data-id="{order[0]}"] .state', "rejected: manual")
        wait_text(driver, "#n-scored", "(3)")
        driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{order[1]}"]').click()
        driver.find_element(By.TAG_NAME, "body").send_keys("d")
        wait_text(driver, f'#grid .card[data-id="{order[1]}"] .state', "rejected: manual")
        wait_text(driver, "#status", "applied at the next make dataset")
        assert "D score" in driver.find_element(By.CSS_SELECTOR, f'#grid .card[data-id="{order[1]}"]').text
        driver.refresh()
        wait_ids(driver, order[2:])  # no longer accepted: out of the view
        assert console_errors(driver) == []

    rows = jsonl_rows(layout.overrides_log, missing_ok=True)
    assert [(r["id"], r["action"], r["reason"]) for r in rows] == [
        (order[0], "demote", "manual"),
        (order[1], "demote", "manual"),
    ]
    run_stage("facecrop", data, config, cascade=scored["cascade"], check=True)
    run_stage("dedup", data, config, check=True)
    shard = set(json.loads(layout.shard_json.read_text())["ids"])
    assert shard == set(scored["accepted"]) - {order[0], order[1]}


def test_search_and_the_value_range_narrow_the_ranking(scored):
    data, order, values = scored["data"], scored["order"], scored["values"]
    with running_app(data, scored["config"], "--runs-dir", str(scored["runs"])) as url, browser() as driver:
        driver.get(url + "#view=scored&lo=-1&hi=1")
        wait_ids(driver, [i for i in order if -1 <= values[i] <= 1])
        assert driver.find_element(By.ID, "range-name").text == "D score"
        assert not driver.find_element(By.ID, "demote").get_attribute("hidden")
        driver.get(url + "#view=scored&desc=1")  # highest first
        wait_ids(driver, order[::-1])
        driver.get(url + "#view=scored&q=style2paints")
        expected = [i for i in order if "style2paints" in json.dumps(read_row(data, i))]
        assert expected
        wait_ids(driver, expected)
        names = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .src")]
        assert all("style2paints" in n for n in names)
        assert console_errors(driver) == []


def test_without_a_scores_file_the_tab_says_how_to_make_one(fresh_data, tmp_path):
    data = fresh_data["data"]
    empty = tmp_path / "runs"
    (empty / "a-run").mkdir(parents=True)  # a run with no scores yet
    with running_app(data, fresh_data["config"], "--runs-dir", str(empty)) as url, browser() as driver:
        driver.get(url + "#view=scored")
        wait_text(driver, "#grid p", HOW)
        assert f"no {empty}/*/scores.jsonl yet" in driver.find_element(By.CSS_SELECTOR, "#grid p").text
        tab = driver.find_element(By.ID, "tab-scored")
        assert "(no scores)" in tab.text and HOW in tab.get_attribute("title")
        assert driver.find_element(By.ID, "scores-file").get_attribute("hidden") is not None
        # Scored while the app runs: the next page load finds it.
        write_run_scores(empty, "a-run", {i: 0.5 for i in crops(data)["shard"]})
        driver.refresh()
        wait_for(driver, "#grid .card", count=4)
        assert "(4)" in driver.find_element(By.ID, "tab-scored").text
        assert console_errors(driver) == []


def test_the_endpoint_keeps_the_rules_and_takes_no_path_from_a_request(scored):
    data, older = scored["data"], scored["older"]
    with running_app(data, scored["config"], "--scores", str(older)) as url:
        base, host, token = url_parts(url)
        rebound = host.replace("127.0.0.1", "rebind.evil.example")
        assert http(f"{base}/api/scores", headers={"Host": rebound})[0] == 403
        # --scores wins over the newer run, and a request cannot name another file
        for query in ("", f"?path={scored['path']}", f"?scores={scored['path']}&file=../../etc/passwd"):
            status, page = get_json(base, host, f"/api/scores{query}")
            assert status == 200 and page["total"] == 4
            assert {item["score"] for item in page["items"]} == {0.0}
        status, summary = get_json(base, host, "/api/summary")
        assert summary["scores"]["file"] == str(older) and summary["scores"]["step"] == 3
        write = {"Host": host, "Content-Type": "application/json", "Origin": base, "X-Review-Token": token}
        body = json.dumps({"items": [{"id": scored["order"][0], "action": "demote"}]}).encode()
        assert http(f"{base}/api/scores", body, write)[0] == 404  # the view has no write of its own
        assert http(f"{base}/api/crops", body, {**write, "X-Review-Token": "wrong"})[0] == 403
        assert http(f"{base}/api/crops", body, {**write, "Origin": "http://evil.example"})[0] == 403
        status, answer = get_json(base, host, "/api/scores?limit=1")
        assert status == 200 and answer["total"] == 4
    assert not Layout(data).overrides_log.exists()


def test_a_scores_file_named_and_not_there_is_exit_4(fresh_data, tmp_path):
    missing = tmp_path / "runs" / "typo" / "scores.jsonl"
    result = run_cli("review", "--data", fresh_data["data"], "--scores", missing, timeout=120)
    assert result.returncode == 4
    assert str(missing) in one_line(result, "review") and HOW in result.stderr


def test_what_train_score_writes_is_what_the_view_lists(fresh_data, tmp_path):
    """A real 4-step run on the fixture's shard, scored by `animefaces score`, read by the app."""
    data = fresh_data["data"]
    runs = tmp_path / "runs"
    config = write_train_config(tmp_path / "train.toml", batch_size=2)
    run_train(train_args(config, data, runs, "--max-steps", "4", run="tiny"), tmp_path, check=True)
    run = RunLayout.of(runs, "tiny")
    run_cli("animefaces score", "--ckpt", run.last, "--data", data, "--device", "cpu", check=True)
    scores = {row["id"]: row["score"] for row in jsonl_rows(run.scores)}
    assert set(scores) == set(crops(data)["shard"])
    with running_app(data, fresh_data["config"], "--runs-dir", str(runs)) as url:
        base, host, _ = url_parts(url)
        status, page = get_json(base, host, "/api/scores")
        assert status == 200
        assert {item["id"] for item in page["items"]} == set(scores)
        assert all(item["score"] == scores[item["id"]] for item in page["items"])
        assert [item["score"] for item in page["items"]] == sorted(scores.values())  # lowest first
        summary = get_json(base, host, "/api/summary")[1]["scores"]
        assert summary["file"] == str(run.scores) and summary["checkpoint"] == str(run.last)
        assert summary["step"] == 4 and summary["rows"] == 4 and summary["unscored"] == 1
