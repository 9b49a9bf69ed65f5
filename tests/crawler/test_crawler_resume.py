"""Kill -9 mid-crawl and re-run: the same store and manifest as an uninterrupted crawl, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout


def without_timestamps(rows: list[dict]) -> list[dict]:
    cleaned = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "fetched_at"}
        row["provenance"] = [{k: v for k, v in p.items() if k != "fetched_at"} for p in row["provenance"]]
        cleaned.append(row)
    return cleaned


def store_files(data: Path) -> dict[str, bytes]:
    return {
        p.relative_to(data).as_posix(): p.read_bytes()
        for p in Layout(data).raw_dir.rglob("*")
        if p.is_file() and p != Layout(data).raw_manifest
    }


def kill_when_stored(process: subprocess.Popen, data: Path, count: int, timeout: float = 60) -> int:
    """SIGKILL the crawler once `count` images are in the store; returns how many there were."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        stored = (
            [p for p in Layout(data).raw_dir.rglob("*.jpg") if not p.name.startswith(".tmp-")]
            if Layout(data).raw_dir.exists()
            else []
        )
        if len(stored) >= count:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return len(stored)
        time.sleep(0.01)
    process.kill()
    process.wait()
    pytest.fail(f"the crawler finished or stalled before storing {count} images: {process.stderr.read()}")


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(
    site_server, getchu, face_images, write_config, run_crawler, start_crawler, tmp_path
):
    products = {3000 + p: face_images[p * 4 : p * 4 + 4] for p in range(8)}
    products[3007] = products[3007][:3] + [face_images[0]]  # the same bytes in two products
    total = len({bytes(b) for images in products.values() for b in images})
    server = site_server(latency=0.1)
    getchu(server, products, year=2012, month=5)
    config = write_config(
        [{"kind": "getchu", "base_url": server.base, "years": [2012], "months": [5]}], {"workers": 2}
    )

    reference = tmp_path / "reference"
    done = run_crawler(config, reference)
    assert done.returncode == 0, done.stderr
    reference_requests = len(server.hits())

    killed = tmp_path / "killed"
    first = kill_when_stored(start_crawler(config, killed), killed, 3)
    second = kill_when_stored(start_crawler(config, killed), killed, first + 10)
    assert second < total, "the second kill came too late to test anything"
    final = start_crawler(config, killed)
    assert final.wait(timeout=120) == 0, final.stderr.read()

    expected = read_jsonl(Layout(reference).raw_manifest)
    assert len(expected) == total
    assert without_timestamps(read_jsonl(Layout(killed).raw_manifest)) == without_timestamps(expected)
    assert store_files(killed) == store_files(reference)
    assert not [p for p in killed.rglob("*") if p.name.startswith(".tmp-")]
    # Only what was in flight at each kill (2 workers) may have been fetched twice.
    image_hits = [h for h in server.hits()[reference_requests:] if h.path.startswith("/brandnew/")]
    assert len(image_hits) - len({h.path for h in image_hits}) <= 4


def test_second_run_fetches_nothing_and_refresh_finds_new(
    site_server, getchu, face_images, write_config, run_crawler, tmp_path
):
    server = site_server()
    getchu(server, {10: face_images[0:2], 11: face_images[2:4]}, year=2011, month=2)
    config = write_config([{"kind": "getchu", "base_url": server.base, "years": [2011], "months": [2]}])
    data = tmp_path / "data"
    assert run_crawler(config, data).returncode == 0
    first_hits = len(server.hits())
    manifest_before = Layout(data).raw_manifest.read_bytes()
    files_before = {
        p: p.stat().st_mtime_ns
        for p in data.rglob("*")
        if p.is_file() and Layout(data).crawl_state.name not in p.name
    }

    again = run_crawler(config, data)
    assert again.returncode == 0, again.stderr
    assert len(server.hits()) == first_hits  # not one request: pages replayed from state, images known
    assert Layout(data).raw_manifest.read_bytes() == manifest_before
    # Nothing new: not one file rewritten (downstream stages can trust mtimes).
    assert {
        p: p.stat().st_mtime_ns
        for p in data.rglob("*")
        if p.is_file() and Layout(data).crawl_state.name not in p.name
    } == files_before
    assert "already stored by an earlier run          4" in again.stderr

    getchu(server, {10: face_images[0:2], 11: face_images[2:4], 12: face_images[4:6]}, year=2011, month=2)
    refreshed = run_crawler(config, data, "--refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    new_hits = server.hits()[first_hits:]
    assert sorted(h.path.split("?")[0] for h in new_hits) == sorted(
        [
            "/robots.txt",
            "/all/month_title.html",
            "/soft.phtml",
            "/item/12/",
            "/brandnew/12/c12chara1.jpg",
            "/brandnew/12/c12charab1.jpg",
        ]
    )
    assert len(read_jsonl(Layout(data).raw_manifest)) == 6


def test_ctrl_c_writes_manifest_and_rerun_finishes(
    site_server, face_images, write_config, start_crawler, tmp_path
):
    server = site_server(latency=0.1)
    urls = [
        server.route(f"/f{n}.jpg", server.Reply(200, face_images[n], {"Content-Type": "image/jpeg"}))
        for n in range(30)
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"workers": 2})
    data = tmp_path / "data"
    process = start_crawler(config, data)
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and len(list(Layout(data).raw_dir.rglob("*.jpg")) if Layout(data).raw_dir.exists() else []) < 4
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, process.stderr.read()
    assert "re-run to finish" in process.stderr.read()
    partial = read_jsonl(Layout(data).raw_manifest)
    assert 4 <= len(partial) < 30  # what was stored before the interrupt is already in the manifest

    final = start_crawler(config, data)
    assert final.wait(timeout=120) == 0
    assert len(read_jsonl(Layout(data).raw_manifest)) == 30
