"""Crawler throughput against a plain sequential requests loop, and per-host politeness.

A local server process serves ~2,000 distinct ~50 KB JPEGs (real anime faces from
the shared test data, upscaled) on 8 host names, 127.0.0.2 ... 127.0.0.9, adding
50 ms to every response to stand in for a remote site's round trip. Both crawls
fetch and store real bytes; ours also runs every safety check (robots.txt, redirect
and host checks, byte limit, magic-byte sniffing, full Pillow decode, sha256 store,
SQLite state, manifest). The crawler runs as the user runs it (`python -m crawler`),
start-up included. Then, with limits on, the server's own request log shows whether
each host saw the configured rate.
"""

from __future__ import annotations

import http.server
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench.report import BenchResult
from pipeline.layout import Layout

HOSTS = [f"127.0.0.{n}" for n in range(2, 10)]
N_IMAGES = 2000
LATENCY = 0.05
BASELINE_IMAGES = 300  # the sequential loop is slow; its rate is measured on the first 300 URLs
LIMITED_RATE = 5.0
LIMITED_PER_HOST = 25
REPO_ROOT = Path(__file__).resolve().parents[1]


def _make_images(testdata: Path, count: int) -> list[bytes]:
    from PIL import Image

    faces = sorted((testdata / "faces").glob("*.jpg"))[:count]
    images = []
    for path in faces:
        with Image.open(path) as face:
            big = face.convert("RGB").resize((560, 560), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        big.save(out, "JPEG", quality=94)
        images.append(out.getvalue())
    return images


def _serve(testdata: str, queue) -> None:
    """The server process: 8 hosts, 50 ms per response, a request log per host at /__log."""
    images = _make_images(Path(testdata), N_IMAGES)
    log: dict[str, list[float]] = {host: [] for host in HOSTS}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            host = self.server.server_address[0]
            if self.path == "/__log":
                with lock:
                    body = json.dumps(log).encode()
                    for times in log.values():
                        times.clear()
                return self._send(200, body, "application/json")
            with lock:
                log[host].append(time.monotonic())
            time.sleep(LATENCY)
            if self.path.startswith("/img/") and self.path.endswith(".jpg"):
                index = int(self.path[5:-4])
                if 0 <= index < len(images):
                    return self._send(200, images[index], "image/jpeg")
            self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ports = {}
    for host in HOSTS:
        server = http.server.ThreadingHTTPServer((host, 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        ports[host] = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    queue.put((ports, [len(b) for b in images]))
    threading.Event().wait()  # until the parent terminates this process


def _run_crawler(config: Path, data: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "crawler", "--config", str(config), "--data", str(data), "--no-progress"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"crawler failed: {result.stderr[-2000:]}")
    rows = Layout(data).raw_manifest.read_text().splitlines()
    return elapsed, len(rows)


def _config(path: Path, urls_file: Path, rate: float) -> Path:
    path.write_text(
        "[crawler]\n"
        'user_agent = "anime-face-pipeline-bench/0.1 (+bench@example.invalid)"\n'
        f"rate_per_host = {rate}\n"
        "[[sources]]\n"
        'kind = "urls"\n'
        f'file = "{urls_file.resolve()}"\n'  # the config resolves relative paths against its own folder
        "max_images = 0\n"
    )
    return path


def _baseline_rate(urls: list[str], folder: Path) -> float:
    """The reference scrapers' loop: one requests.get after another, saved to disk."""
    folder.mkdir()
    started = time.perf_counter()
    for i, url in enumerate(urls[:BASELINE_IMAGES]):
        response = requests.get(url, timeout=30)
        response.raise_for_status()
        (folder / f"{i}.jpg").write_bytes(response.content)
    return BASELINE_IMAGES / (time.perf_counter() - started)


def _crawl_list(work: Path, name: str, urls: list[str], rate: float, log_url: str) -> tuple[float, int, dict]:
    """Our crawler over a URL list at `rate` per host (0: no limit), with the server's request log of it."""
    urls_file = work / f"{name}.txt"
    urls_file.write_text("\n".join(urls) + "\n")
    requests.get(log_url, timeout=10)  # clears the log
    elapsed, stored = _run_crawler(_config(work / f"{name}.toml", urls_file, rate), work / name)
    return elapsed, stored, requests.get(log_url, timeout=10).json()


def _host_rates(log: dict[str, list[float]]) -> tuple[list[float], list[float]]:
    """Each host's request rate as its server logged it, and its smallest gap between two requests."""
    rates, min_gaps = [], []
    for times in log.values():
        times = sorted(times)
        if len(times) > 1:
            rates.append((len(times) - 1) / (times[-1] - times[0]))
            min_gaps.append(min(b - a for a, b in zip(times, times[1:], strict=False)))
    return rates, min_gaps


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    work = Path(data_dir) / "crawler"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    server = context.Process(target=_serve, args=(str(testdata), queue), daemon=True)
    server.start()
    try:
        ports, sizes = queue.get(timeout=120)
        hosts = [HOSTS[i % len(HOSTS)] for i in range(len(sizes))]
        urls = [f"http://{host}:{ports[host]}/img/{i}.jpg" for i, host in enumerate(hosts)]
        log_url = f"http://{HOSTS[0]}:{ports[HOSTS[0]]}/__log"
        baseline_rate = _baseline_rate(urls, work / "baseline")
        elapsed, stored, _ = _crawl_list(work, "fast", urls, 0, log_url)
        # limits on: does each host see the configured rate?
        _, _, log = _crawl_list(work, "limited", urls[: LIMITED_PER_HOST * len(HOSTS)], LIMITED_RATE, log_url)
    finally:
        server.terminate()
        server.join(10)
    rates, min_gaps = _host_rates(log)
    worst = max(rates, key=lambda r: abs(r - LIMITED_RATE))
    mean_kb = sum(sizes) / len(sizes) / 1000
    return [
        BenchResult(
            "crawler",
            "images stored/s, 8 hosts, 50 ms latency, no limit",
            stored / elapsed,
            baseline_rate,
            "img/s",
            goal=">= 5x sequential requests loop",
            note=f"{stored} images of ~{mean_kb:.0f} KB in {elapsed:.1f}s incl. start-up, all checks on; "
            f"baseline: requests.get loop over the first {BASELINE_IMAGES}; {os.cpu_count()} CPUs",
        ),
        BenchResult(
            "crawler",
            f"per-host request rate, limit {LIMITED_RATE:g}/s (worst host)",
            worst,
            LIMITED_RATE,
            "req/s",
            higher_is_better=False,
            goal="within 5% of the limit (server-side)",
            note=f"server-side log, {len(rates)} hosts, {LIMITED_PER_HOST} images + robots.txt each; "
            f"rates {min(rates):.3f}..{max(rates):.3f}/s, smallest gap {min(min_gaps) * 1000:.0f} ms "
            f"(limit {1000 / LIMITED_RATE:.0f} ms)",
        ),
    ]


if __name__ == "__main__":
    from bench.report import format_table

    print(
        format_table(
            run(
                Path(sys.argv[1] if len(sys.argv) > 1 else "data/bench"),
                REPO_ROOT.parent / "shared" / "testdata",
            )
        )
    )
