"""Per-host politeness measured where it matters: in the server's own request log."""

from __future__ import annotations

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout


def test_per_host_spacing_and_hosts_in_parallel(
    site_server, face_images, write_config, run_crawler, tmp_path
):
    rate = 5.0
    servers = [site_server("127.0.0.1"), site_server("127.0.0.2")]
    urls = []
    for s, server in enumerate(servers):
        for n in range(10):
            urls.append(
                server.route(
                    f"/img{n}.jpg", server.Reply(200, face_images[s * 10 + n], {"Content-Type": "image/jpeg"})
                )
            )
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    config = write_config([{"kind": "urls", "file": "urls.txt"}], {"rate_per_host": rate, "workers": 8})
    result = run_crawler(config, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(Layout(tmp_path / "data").raw_manifest)) == 20

    interval = 1.0 / rate
    spans = []
    for server in servers:
        times = sorted(h.time for h in server.hits())
        assert len(times) == 11  # robots.txt + 10 images, each counted against the host's rate
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # The crawler spaces request starts exactly; single gaps as the server logs them also carry
        # the server's own thread scheduling (tens of ms on a loaded 2-core box), the mean does not.
        assert min(gaps) >= 0.75 * interval, gaps
        assert (len(times) - 1) / (times[-1] - times[0]) <= rate * 1.05, gaps
        spans.append((times[0], times[-1]))
    # The two hosts were crawled at the same time, not one after the other.
    (a0, a1), (b0, b1) = spans
    assert min(a1, b1) - max(a0, b0) > 1.0
