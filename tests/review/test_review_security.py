"""Safe to leave running: token on every write, only its own Origin/Host, files only from DATA,
crawled text as text, and concurrent writers and readers that lose nothing and see no half batch."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bench.bench_review import HOSTILE_TITLE, HOSTILE_URL, make_data
from pipeline import decisions
from pipeline.layout import Layout
from tests.helpers.browser import browser, console_errors, wait_for, wait_text
from tests.helpers.files import jsonl_rows
from tests.helpers.review import http, running_app, url_parts


@pytest.fixture
def synthetic(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    ids = make_data(data, 300)
    return {"data": data, **ids}


def write(base: str, host: str, token: str | None, items: list[dict], **headers: str) -> tuple[int, dict]:
    sent = {"Host": host, "Content-Type": "application/json", "Origin": base, **headers}
    if token is not None:
        sent["X-Review-Token"] = token
    status, body = http(f"{base}/api/crops", json.dumps({"items": items}).encode(), sent)
    return status, json.loads(body)


def test_writes_need_the_token_the_own_origin_and_host(synthetic):
    data = synthetic["data"]
    crop = synthetic["rejected"][0]
    promote = [{"id": crop, "action": "promote"}]
    log = Layout(data).overrides_log
    with running_app(data) as url:
        base, host, token = url_parts(url)
        assert base.startswith("http://127.0.0.1:")
        assert write(base, host, None, promote)[0] == 403
        assert write(base, host, "not-the-token", promote)[0] == 403
        status, body = write(base, host, token, promote, Origin="http://evil.example")
        assert status == 403 and "cross-origin" in body["error"]
        assert write(base, host, token, promote, **{"Sec-Fetch-Site": "cross-site"})[0] == 403
        # a form's simple request
        assert write(base, host, token, promote, **{"Content-Type": "text/plain"})[0] == 403
        rebound = host.replace("127.0.0.1", "rebind.evil.example")
        assert write(base, rebound, token, promote, Origin=f"http://{rebound}")[0] == 403  # DNS rebinding
        assert http(f"{base}/api/summary", headers={"Host": rebound})[0] == 403
        assert not log.exists()
        status, body = write(base, host, token, promote)
        assert status == 200 and body["items"][0]["decision"] == "accepted"
        assert write(base, host, token, [{"id": "no_such_crop", "action": "promote"}])[0] == 400
        assert write(base, host, token, [{"id": crop, "action": "demote", "reason": "../../etc"}])[0] == 400
    assert [(r["id"], r["action"]) for r in jsonl_rows(log, missing_ok=True)] == [(crop, "promote")]


def test_files_only_from_inside_data(synthetic, tmp_path):
    data = synthetic["data"]
    outside = tmp_path / "secret.png"
    outside.write_bytes((data / "pool" / "0.png").read_bytes())
    (Layout(data).raw_dir / "link.png").symlink_to(outside)
    source = json.loads(Layout(data).raw_manifest.read_text().splitlines()[1])["path"]
    with running_app(data) as url:
        base, host, _ = url_parts(url)
        get = lambda path: http(base + path, headers={"Host": host})[0]  # noqa: E731
        assert get(f"/file/{source}") == 200
        assert get(f"/crop/{synthetic['accepted'][0]}") == 200
        assert get(f"/thumb/{synthetic['accepted'][0]}") == 200
        for path in (
            "/file/../secret.png",
            "/file/%2e%2e/secret.png",
            "/file/raw/../../secret.png",
            "/file/..%2Fsecret.png",
            "/file//etc/passwd",
            "/file/raw/link.png",
            "/file/crops/manifest.jsonl",
            "/crop/..%2F..%2Fsecret",
            "/thumb/../secret",
            "/static/../server.py",
        ):
            assert get(path) == 404, path


def test_two_writers_lose_nothing_and_a_reader_never_sees_half_a_batch(synthetic):
    data = synthetic["data"]
    ids = synthetic["rejected"][:80]
    assert len(ids) == 80
    batches = [ids[k : k + 10] for k in range(0, len(ids), 10)]
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        # What a stage does: read the whole log; every batch of 10 is there entirely or not at all.
        while not stop.is_set():
            seen.append(len(decisions.read_overrides(data)))

    with running_app(data) as url:
        base, host, token = url_parts(url)
        results: list[int] = []
        watcher = threading.Thread(target=reader)
        watcher.start()
        writers = [
            threading.Thread(
                target=lambda b=b: results.append(
                    write(base, host, token, [{"id": i, "action": "promote"} for i in b])[0]
                )
            )
            for b in batches
        ]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        watcher.join()
        assert results == [200] * len(batches)
        summary = json.loads(http(f"{base}/api/summary", headers={"Host": host})[1])
        assert summary["decisions"] == len(ids)
    rows = jsonl_rows(Layout(data).overrides_log, missing_ok=True)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert seen and all(n % 10 == 0 for n in seen), sorted(set(seen))


def test_crawled_text_is_text_and_javascript_urls_are_not_links(synthetic):
    data = synthetic["data"]
    with running_app(data) as url, browser() as driver:
        driver.get(url + "#view=accepted&sort=id")
        cards = wait_for(driver, "#grid .card .src")
        assert any(HOSTILE_TITLE in c.text for c in cards)
        assert driver.execute_script("return document.scripts.length") == 1
        assert not driver.find_elements("css selector", '#grid img[src="x"]')
        hostile = next(c for c in cards if HOSTILE_TITLE in c.text)
        hostile.find_element("xpath", "..").find_element("css selector", "button.open").click()
        wait_text(driver, "#viewer-meta", HOSTILE_URL)
        assert not driver.find_elements("css selector", "#viewer-meta a[href^='javascript']")
        assert [a.get_attribute("href") for a in driver.find_elements("css selector", "#viewer-meta a")] == [
            "https://example.org/page/0"
        ]
        assert console_errors(driver) == []


def test_a_page_without_the_token_can_look_but_not_write(synthetic):
    data = synthetic["data"]
    with running_app(data) as url, browser() as driver:
        driver.get(url.split("?")[0] + "#view=rejected")
        wait_text(driver, "#status", "no token")
        wait_for(driver, "#grid .card button.promote")[0].click()
        wait_text(driver, "#status", "token")
    assert not Layout(data).overrides_log.exists()


def test_an_explicit_host_is_honoured_and_still_checks_host_headers(synthetic):
    """`--host` is a person's choice: the app binds there, and still answers only to names of this machine."""
    with running_app(synthetic["data"], None, "--host", "127.0.0.2") as url:
        base, host, _ = url_parts(url)
        assert host.startswith("127.0.0.2:")
        assert http(f"{base}/api/summary", headers={"Host": host})[0] == 200
        assert http(f"{base}/api/summary", headers={"Host": "attacker.example"})[0] == 403
