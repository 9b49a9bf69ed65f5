"""Finding things in the review app: search, filters in the URL, the images with no face, similar faces.

On the synthetic DATA (drawn faces, no shared art) and on the DATA real facecrop and dedup runs
leave; the new read endpoints join the security checks (Host, token and Origin on writes, paths).
With REVIEW_SCREENSHOTS=DIR set, the browser tests also write docs/review.md's screenshots of
search, the no-face view and similar faces.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers.browser import browser, console_errors, wait_for, wait_text
from tests.helpers.browser import screenshot as shot
from tests.helpers.files import jsonl_rows
from tests.helpers.review import http, running_app
from tests.helpers.review import url_parts as parts

pytest.importorskip("selenium", reason="the `test` extra installs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402 (after the importorskip)
from selenium.webdriver.common.keys import Keys  # noqa: E402 (after the importorskip)
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402 (after the importorskip)

from bench.bench_review import make_data  # noqa: E402 (after the importorskip)
from pipeline.layout import Layout  # noqa: E402 (after the importorskip)

# Every GET endpoint this change added, with a harmless query: each must refuse a foreign Host.
NEW_ENDPOINTS = ["/api/images", "/api/image?sha=0", "/api/similar?id=0", "/srcthumb/0"]


def get_json(base: str, host: str, path: str) -> tuple[int, dict]:
    status, body = http(base + path, headers={"Host": host})
    return status, json.loads(body) if body.startswith(b"{") else {}


def total(driver) -> int | None:
    """The grid's total, from the pager's "1–100 of N" (0 when empty; None while a page is loading)."""
    if driver.find_elements(By.CSS_SELECTOR, "#grid[aria-busy]"):
        return None
    text = driver.find_element(By.ID, "page-info").text
    return int(text.split(" of ")[1].split()[0]) if " of " in text else 0


def wait_total(driver, check) -> int:
    return WebDriverWait(driver, 20).until(lambda d: (n := total(d)) is not None and check(n) and n)


def noface_expected(data: Path) -> set[str]:
    """Images (raw manifest and crops manifest) none of whose crops manifest rows is accepted."""
    layout = Layout(data)
    images = {row["sha256"] for row in jsonl_rows(layout.raw_manifest)}
    rows = jsonl_rows(layout.crops_manifest)
    images |= {row["source_sha256"] for row in rows}
    return images - {row["source_sha256"] for row in rows if row["decision"] == "accepted"}


def all_images(base: str, host: str, query: str = "") -> list[dict]:
    items, offset = [], 0
    while True:
        status, page = get_json(base, host, f"/api/images?limit=500&offset={offset}{query}")
        assert status == 200
        items += page["items"]
        offset += 500
        if offset >= page["total"]:
            return items


@pytest.fixture
def synthetic(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    return {"data": data, **make_data(data, 1200)}


def test_search_narrows_and_clears(synthetic):
    data = synthetic["data"]
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=accepted")
        everything = wait_total(driver, lambda n: n > 0)
        assert everything == len(synthetic["accepted"])
        box = driver.find_element(By.ID, "q")
        box.send_keys('"synthetic illustration 37"', Keys.ENTER)
        narrowed = wait_total(driver, lambda n: 0 < n < everything)
        names = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .src")]
        assert len(names) == narrowed and all(n.startswith("synthetic illustration 37") for n in names)
        assert "q=%22synthetic+illustration+37%22" in driver.current_url  # a search is a link
        shot(driver, "search")
        # A folder picture is found by its file name, and a word everywhere: the counts follow.
        box = driver.find_element(By.ID, "q")
        box.clear()
        box.send_keys("drawn_0000", Keys.ENTER)
        driver.find_element(By.CSS_SELECTOR, '#views button[data-view="rejected"]').click()
        wait_text(driver, "#reasons button.on", "all reasons")
        wait_total(driver, lambda n: n > 0)
        files = {c.text for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .src")}
        assert files and all(f.startswith("drawn_0000") for f in files), files
        driver.find_element(By.ID, "clear-filters").click()
        wait_total(driver, lambda n: n > len(files))
        assert driver.find_element(By.ID, "q").get_attribute("value") == ""
        assert "q=" not in driver.current_url
        assert console_errors(driver) == []


def test_a_filter_survives_a_reload_through_the_url(synthetic):
    data = synthetic["data"]
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=accepted&sort=sharpness")
        wait_total(driver, lambda n: n > 0)
        Select(driver.find_element(By.ID, "site")).select_by_value("synthetic")
        wait_text(driver, "#page-info", "matching")
        for name, value in (("lo", "300"), ("hi", "600")):
            field = driver.find_element(By.ID, name)
            field.send_keys(value, Keys.TAB)
            WebDriverWait(driver, 20).until(lambda d, n=name, v=value: f"{n}={v}" in d.current_url)
        filtered = wait_total(driver, lambda n: n > 0)
        values = [
            float(c.text.split()[1]) for c in driver.find_elements(By.CSS_SELECTOR, "#grid .card .value")
        ]
        assert values and all(300 <= v <= 600 for v in values) and values == sorted(values)
        link = driver.current_url
        driver.get("about:blank")
        driver.get(link)  # a bookmark: the same view, filter and range
        assert wait_total(driver, lambda n: n > 0) == filtered
        assert (
            Select(driver.find_element(By.ID, "site")).first_selected_option.get_attribute("value")
            == "synthetic"
        )
        assert driver.find_element(By.ID, "lo").get_attribute("value") == "300"
        assert driver.find_element(By.ID, "hi").get_attribute("value") == "600"
        base, host, _ = parts(url)
        status, page = get_json(
            base, host, "/api/crops?view=accepted&site=synthetic&sort=sharpness&lo=300&hi=600"
        )
        assert status == 200 and page["total"] == filtered
        assert console_errors(driver) == []


def test_the_no_face_view_lists_exactly_the_images_whose_rows_accept_nothing(synthetic):
    data = synthetic["data"]
    expected = noface_expected(data)
    assert set(synthetic["noface"]) <= expected  # every kind is there: rejected boxes, none found, broken
    with running_app(data) as url, browser() as driver:
        base, host, _ = parts(url)
        listed = all_images(base, host)
        assert {i["sha256"] for i in listed} == expected and len(listed) == len(expected)
        reasons = {i["sha256"]: i["reason"] for i in listed}
        assert {reasons[s] for s in synthetic["rejected_only"]} == {"rejected_boxes"}
        assert {reasons[s] for s in synthetic["broken"]} == {"decode_error"}
        rejected_only = next(i for i in listed if i["sha256"] == synthetic["rejected_only"][0])
        manifest_boxes = [
            r
            for r in jsonl_rows(Layout(data).crops_manifest)
            if r["source_sha256"] == rejected_only["sha256"]
        ]
        assert len(rejected_only["boxes"]) == len(manifest_boxes)
        assert [i["sha256"] for i in all_images(base, host, "&reason=no_face")] == [
            s for s in (i["sha256"] for i in listed) if reasons[s] == "no_face"
        ]
        driver.get(url + "#view=noface")
        wait_text(driver, "#n-noface", f"({len(expected)})")  # counted in the header
        assert wait_total(driver, lambda n: n > 0) == len(expected)
        card = wait_for(driver, f'.imgcard[data-sha="{rejected_only["sha256"]}"]')[0]
        assert len(card.find_elements(By.CSS_SELECTOR, ".vbox")) == len(manifest_boxes)  # boxes drawn
        assert "rejected" in card.find_element(By.CSS_SELECTOR, ".why").text
        # a folder picture's file name
        assert card.find_element(By.CSS_SELECTOR, ".src").text.startswith("drawn_")
        shot(driver, "noface")
        assert console_errors(driver) == []


def test_no_face_on_the_real_stages_output(pipeline_data):
    """On what facecrop really wrote: the photo whose false detections were all rejected, and nothing else."""
    data = pipeline_data["data"]
    expected = noface_expected(data)
    assert expected  # the photo
    with running_app(data, pipeline_data["config"]) as url:
        base, host, _ = parts(url)
        assert {i["sha256"] for i in all_images(base, host)} == expected
        status, summary = get_json(base, host, "/api/summary")
        assert status == 200 and summary["noface"] == len(expected)


def pair(data: Path) -> tuple[str, str]:
    cluster = next(r for r in jsonl_rows(Layout(data).faces_manifest) if r["duplicates"])
    return cluster["id"], cluster["duplicates"][0]


@pytest.mark.testdata
def test_similar_returns_the_known_near_duplicate_pair_first(pipeline_data):
    data = pipeline_data["data"]
    kept, other = pair(data)
    dropped = {r["id"]: r for r in jsonl_rows(Layout(data).dropped_log)}
    with running_app(data, pipeline_data["config"]) as url, browser() as driver:
        base, host, _ = parts(url)
        for one, two in ((kept, other), (other, kept)):
            status, answer = get_json(base, host, f"/api/similar?id={one}")
            assert status == 200 and answer["items"][0]["id"] == two, answer["items"][:2]
            assert (
                answer["items"][0]["same_cluster"]
                and answer["items"][0]["distance"] == dropped[other]["distance"]
            )
            assert [i["distance"] for i in answer["items"][1:]] == sorted(
                i["distance"] for i in answer["items"][1:]
            )
        driver.get(url + "#view=accepted&sort=id")
        wait_for(driver, f'#grid .card[data-id="{kept}"] button.similar')[0].click()
        # the similar view, the face asked about first
        wait_for(driver, f'#grid .card.query[data-id="{kept}"]')
        cards = wait_for(driver, "#grid .card", count=2)
        assert cards[0].get_attribute("data-id") == kept
        assert cards[1].get_attribute("data-id") == other
        assert cards[1].get_attribute("data-distance") == str(dropped[other]["distance"])
        assert "same duplicate cluster" in cards[1].text and "phash" in cards[1].text
        assert f"to={kept}" in driver.current_url
        assert console_errors(driver) == []  # (no screenshot: these are shared third-party images)


def test_similar_lists_the_cluster_first_then_the_nearest_faces(synthetic):
    members = next(c for c in synthetic["clusters"] if len(c) >= 3)
    near = members[2]  # a near copy of the kept face (a brighter re-save)
    with running_app(synthetic["data"]) as url, browser() as driver:
        base, host, _ = parts(url)
        status, answer = get_json(base, host, f"/api/similar?id={near}&limit=12")
        assert status == 200 and len(answer["items"]) == 12
        mates = [i["id"] for i in answer["items"] if i["same_cluster"]]
        assert sorted(mates) == sorted(m for m in members if m != near)
        assert [i["id"] for i in answer["items"][: len(mates)]] == mates  # its cluster first
        rest = [i["distance"] for i in answer["items"][len(mates) :]]
        assert rest == sorted(rest)
        driver.get(url + f"#view=similar&to={near}")
        wait_for(driver, f'#grid .card.query[data-id="{near}"]')
        wait_for(driver, "#grid .card[data-distance]", count=12)
        shot(driver, "similar")
        assert console_errors(driver) == []


def test_new_endpoints_join_the_security_checks(synthetic, tmp_path):
    data = synthetic["data"]
    layout = Layout(data)
    secret = tmp_path / "secret.png"
    secret.write_bytes((data / "pool" / "0.png").read_bytes())
    (data / "raw" / "out.png").symlink_to(secret)
    hostile = [  # raw rows whose path leaves DATA: named, never served
        {"sha256": "a" * 64, "path": "../secret.png", "site": "x", "meta": {}},
        {"sha256": "b" * 64, "path": str(secret), "site": "x", "meta": {}},
        {"sha256": "c" * 64, "path": "raw/out.png", "site": "x", "meta": {}},
    ]
    with layout.raw_manifest.open("a") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in hostile)
    good = synthetic["rejected_only"][0]
    with running_app(data) as url:
        base, host, token = parts(url)
        get = lambda path, h=host: http(base + path, headers={"Host": h})[0]  # noqa: E731
        assert get(f"/srcthumb/{good}") == 200 and get(f"/api/image?sha={good}") == 200
        rebound = host.replace("127.0.0.1", "rebind.evil.example")
        for path in NEW_ENDPOINTS:
            assert get(path, rebound) == 403, path  # DNS rebinding
            body = json.dumps({"items": [{"id": synthetic["rejected"][0], "action": "promote"}]}).encode()
            headers = {"Host": host, "Content-Type": "application/json", "Origin": base}
            assert http(base + path.split("?")[0], body, headers)[0] == 403, path  # no token
            foreign = {**headers, "X-Review-Token": token, "Origin": "http://evil.example"}
            assert http(base + path.split("?")[0], body, foreign)[0] == 403, path
        for sha, source in (("a" * 64, None), ("b" * 64, None), ("c" * 64, "/file/raw/out.png")):
            assert get(f"/srcthumb/{sha}") == 404, sha
            status, image = get_json(base, host, f"/api/image?sha={sha}")
            assert status == 200 and image["source"] == source, image  # and /file/raw/out.png is a 404
        for path in (
            "/srcthumb/..%2F..%2Fsecret.png",
            "/srcthumb/../secret.png",
            f"/srcthumb/{quote('../' + good)}",
            "/api/image?sha=..%2F..%2Fetc%2Fpasswd",
            "/api/similar?id=..%2F..%2Fsecret",
            "/file/raw/out.png",
        ):
            assert get(path) == 404, path
    assert not layout.overrides_log.exists()  # nothing was written
