"""The duplicate report: opened from disk in a real headless browser, crawled metadata escaped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dedup_support import run_dedup, variant, write_crop, write_manifest
from PIL import Image

pytestmark = pytest.mark.testdata

EVIL_TITLE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("CI needs chromium for the report test (.ci/run installs it)")
    pytest.skip("no chromium on this machine")


def test_report_shows_clusters_with_the_kept_face_and_escapes_crawled_metadata(tmp_path: Path, faces) -> None:
    browser = chromium()
    data = tmp_path / "data"
    rows = []
    for k, path in enumerate(faces[:6]):
        image = Image.open(path).convert("RGB")
        original = write_crop(data, image, path.name, box=[0, 0, 120, 120])
        rows += [
            original,
            write_crop(data, variant(image, "jpeg75"), f"{path.name}/copy", box=[0, 0, 90, 90]),
        ]
        if k == 0:
            evil_source = original["source_sha256"]
    rows.append(write_crop(data, Image.open(faces[10]).convert("RGB"), "single"))
    write_manifest(data, rows)
    raw = data / "raw" / "manifest.jsonl"
    raw.parent.mkdir(parents=True)
    raw.write_text(
        json.dumps(
            {
                "sha256": evil_source,
                "url": "javascript:document.title='pwned'",
                "page_url": "https://example.org/a?b=1&c=<2>",
                "site": "getchu",
                "meta": {"title": EVIL_TITLE, "character": "Miku & <Rin>"},
            }
        )
        + "\n"
    )
    run_dedup(data)
    page = data / "dedup" / "report.html"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<title>dedup report</title>" in dom  # no injected script ran
    assert "pwned" in dom and "&lt;script&gt;document.title" in dom  # shown as text
    assert 'href="javascript:' not in dom
    assert 'href="https://example.org/a?b=1&amp;c=&lt;2&gt;"' in dom
    assert "Miku &amp; &lt;Rin&gt;" in dom
    assert dom.count('class="cluster"') == 6  # singletons are not duplicate clusters
    assert dom.count('figure class="kept"') == 6 and dom.count('figure class="dup"') == 6
    assert 'data-ready="1"' in dom  # the page's script ran to the end without an error
    for row in rows[:12:2]:  # the larger original is the kept one in every cluster
        assert f'<figure class="kept"><img loading="lazy" src="../crops/{row["id"]}.png"' in dom

    # The filter box works in the browser: opening report.html#q=<id> shows that one cluster.
    target = rows[4]["id"]
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            page.as_uri() + f"#q={target}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'showing <span id="shown">1</span>' in dom
    assert dom.count('class="cluster hidden"') == 5
