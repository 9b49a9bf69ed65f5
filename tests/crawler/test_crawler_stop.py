"""Reliability: SIGTERM and Ctrl-C stop the crawler within 5 s in any state, manifest written.

Each test starts `python -m crawler` against a real local server that keeps it waiting (a 503
forever, a Retry-After, a robots.txt Crawl-delay, headers trickled a byte at a time), sends
the signal once the crawler is deep in that wait, and checks what a user sees: exit 130 within
the 5 s the issue sets, `raw/manifest.jsonl` with what was stored so far, one line on stderr,
and no request started after the signal.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout
from tests.helpers.hostile import HostileServer, image, trickle
from tests.helpers.processes import wait_until

STOP_BOUND = 5.0  # seconds from the signal to the exit
SIGNALLED_AFTER = 2.0  # the crawler has been running at least this long when the signal comes


def wait_for_state(process: subprocess.Popen, condition: Callable[[], bool], started: float) -> None:
    """Until `condition` holds and the crawler has run SIGNALLED_AFTER seconds; fails if it exits first."""
    wait_until(
        lambda: condition() and time.monotonic() - started >= SIGNALLED_AFTER,
        60,
        "the state under test (before the signal)",
        process=process,
    )


def stop(process: subprocess.Popen, sig: signal.Signals) -> tuple[int, str]:
    """Send `sig`; the exit code and stderr, or a failure when the crawler outlives STOP_BOUND."""
    process.send_signal(sig)
    try:
        code = process.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"still running {STOP_BOUND:g} s after {sig.name}\n{process.communicate()[1][-3000:]}")
    return code, process.communicate()[1]


def assert_stopped_cleanly(code: int, stderr: str, data: Path) -> list[dict]:
    assert code == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == [
        "crawler: interrupted; the manifest is up to date, re-run to finish"
    ]
    return read_jsonl(Layout(data).raw_manifest)


def stored_files(data: Path) -> int:
    return len(list(Layout(data).raw_dir.rglob("*.jpg"))) if Layout(data).raw_dir.exists() else 0


def test_sigterm_during_retry_backoff_exits_130_with_manifest(
    site_server, small_images, write_config, start_crawler, tmp_path
):
    """retries = 30 against a 503 forever: the old crawler slept on through its doubling backoff."""
    server = site_server()
    urls = [
        server.route(f"/good{n}.jpg", server.Reply(200, small_images[n], {"Content-Type": "image/jpeg"}))
        for n in range(2)
    ]
    busy = server.route("/busy.jpg", server.Reply(503, b"busy"))
    (tmp_path / "urls.txt").write_text("\n".join([*urls, busy]) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"retries": 30, "workers": 2})
    data = tmp_path / "data"
    process = start_crawler(config, data)
    wait_for_state(process, lambda: len(server.hits("/busy.jpg")) >= 4, time.monotonic())
    hits_at_signal = len(server.hits("/busy.jpg"))
    code, stderr = stop(process, signal.SIGTERM)
    manifest = assert_stopped_cleanly(code, stderr, data)
    assert len(manifest) == 2  # both good images were stored before the signal
    assert len(server.hits("/busy.jpg")) <= hits_at_signal + 1  # at most the one already on its way


def test_sigterm_during_trickled_headers_exits_130_with_manifest(
    small_images, write_config, start_crawler, tmp_path
):
    """A server that sends a header byte every 0.2 s is never silent: only the deadline (30 s
    here) or the stop ends the read. The old crawler started new requests after SIGTERM."""
    slow = {f"/slow{n}.jpg": trickle(b"HTTP/1.1 200 OK\r\n", b"X", 0.2) for n in range(6)}
    server = HostileServer({"/good.jpg": image(small_images[0]), **slow})
    try:
        (tmp_path / "urls.txt").write_text("\n".join(server.url(p) for p in ["/good.jpg", *slow]) + "\n")
        config = write_config(
            [{"kind": "urls", "file": "urls.txt"}],
            {"workers": 2, "request_deadline": 30.0, "read_timeout": 5.0},
        )
        data = tmp_path / "data"
        process = start_crawler(config, data)
        in_flight = lambda: sum(hit.startswith("/slow") for hit in server.hits) >= 2  # noqa: E731
        wait_for_state(process, lambda: in_flight() and stored_files(data) == 1, time.monotonic())
        hits_at_signal = len(server.hits)
        code, stderr = stop(process, signal.SIGTERM)
        manifest = assert_stopped_cleanly(code, stderr, data)
        assert [row["url"] for row in manifest] == [server.url("/good.jpg")]
        assert len(server.hits) <= hits_at_signal + 2  # workers = 2: only requests already sent
    finally:
        server.stop()


def test_ctrl_c_during_retry_after_exits_130_with_manifest(
    site_server, small_images, write_config, start_crawler, tmp_path
):
    """A 503 with Retry-After: 200 holds the host in the rate limiter; Ctrl-C ends that wait."""
    server = site_server()
    good = server.route("/good.jpg", server.Reply(200, small_images[0], {"Content-Type": "image/jpeg"}))
    busy = server.route("/busy.jpg", server.Reply(503, b"busy", {"Retry-After": "200"}))
    (tmp_path / "urls.txt").write_text(f"{good}\n{busy}\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"retries": 30, "workers": 1})
    data = tmp_path / "data"
    process = start_crawler(config, data)
    wait_for_state(process, lambda: len(server.hits("/busy.jpg")) >= 1, time.monotonic())
    code, stderr = stop(process, signal.SIGINT)
    manifest = assert_stopped_cleanly(code, stderr, data)
    assert [row["url"] for row in manifest] == [good]
    assert len(server.hits("/busy.jpg")) == 1  # the Retry-After was never waited out


def test_sigterm_during_crawl_delay_exits_130_with_manifest(
    site_server, small_images, write_config, start_crawler, tmp_path
):
    """robots.txt's Crawl-delay: 50 spaces this host's requests 50 s apart; SIGTERM ends the wait."""
    server = site_server()
    server.route("/robots.txt", server.Reply(200, b"User-agent: *\nCrawl-delay: 50\n"))
    urls = [
        server.route(f"/good{n}.jpg", server.Reply(200, small_images[n], {"Content-Type": "image/jpeg"}))
        for n in range(3)
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"workers": 2})
    data = tmp_path / "data"
    process = start_crawler(config, data)
    wait_for_state(process, lambda: len(server.hits("/robots.txt")) == 1, time.monotonic())
    code, stderr = stop(process, signal.SIGTERM)
    assert assert_stopped_cleanly(code, stderr, data) == []  # nothing stored yet, the manifest is there
    assert [hit.path for hit in server.hits()] == ["/robots.txt"]


def test_backoff_is_capped_by_max_backoff(site_server, write_config, run_crawler, tmp_path):
    """retries = 30 with backoff 0.05 s would wait 0.05 * 2**29 s before its last try; capped at
    0.2 s the crawl finishes, every try made, and the URL is failed for the next run."""
    server = site_server()
    busy = server.route("/busy.jpg", server.Reply(503, b"busy"))
    (tmp_path / "urls.txt").write_text(f"{busy}\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"retries": 30, "max_backoff": 0.2})
    result = run_crawler(config, tmp_path / "data", timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(server.hits("/busy.jpg")) == 31


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_backoff": 0}, "max_backoff must be > 0"),
        ({"max_backoff": 0.01}, "max_backoff (0.01) must be >= backoff (0.05)"),
        ({"checkpoint_seconds": -1.0}, "checkpoint_seconds must be > 0"),
        ({"max_retry_after": -5.0}, "max_retry_after must be >= 0"),
        ({"request_deadline": 1e12}, "request_deadline must be > 0 and <= 86400 seconds"),
    ],
)
def test_duration_settings_out_of_range_are_one_line_config_errors(
    settings, named, write_config, run_crawler, tmp_path
):
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/x.jpg\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], settings)
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_sigterm_during_a_tcp_connect_exits_130_with_manifest(
    small_images, write_config, start_crawler, tmp_path
):
    """A host whose accept queue is full drops the SYN, so connect() blocks until connect_timeout (30 s
    here) and no read can be cut: the crawl does not wait for that thread. The listener is on
    127.0.0.1 with a backlog of 0, filled by two connections this test makes and never accepts."""
    good = HostileServer({"/good.jpg": image(small_images[0])})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    try:
        port = listener.getsockname()[1]
        (tmp_path / "urls.txt").write_text(f"{good.url('/good.jpg')}\nhttp://127.0.0.1:{port}/stuck.jpg\n")
        config = write_config(
            [{"kind": "urls", "file": "urls.txt"}], {"workers": 1, "connect_timeout": 30.0, "retries": 0}
        )
        data = tmp_path / "data"
        process = start_crawler(config, data)
        wait_for_state(process, lambda: stored_files(data) == 1, time.monotonic())
        code, stderr = stop(process, signal.SIGTERM)
        manifest = assert_stopped_cleanly(code, stderr, data)
        assert [row["url"] for row in manifest] == [good.url("/good.jpg")]
    finally:
        for sock in [*fillers, listener]:
            sock.close()
        good.stop()
