"""The duplicate report: opened from disk in a real headless browser, crawled metadata escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.layout import Layout
from tests.helpers.browser import dump_dom, require_chromium
from tests.helpers.crops import run_dedup, variant, write_crop, write_crops_manifest

pytestmark = pytest.mark.testdata

EVIL_TITLE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def test_report_shows_clusters_with_the_kept_face_and_escapes_crawled_metadata(tmp_path: Path, faces) -> None:
    require_chromium()  # before the work: skip (or fail in CI) at once without it
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
    write_crops_manifest(data, rows)
    raw = Layout(data).raw_manifest
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
    page = Layout(data).dedup_report
    dom, _ = dump_dom(page.as_uri())
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
    dom, _ = dump_dom(page.as_uri() + f"#q={target}")
    assert 'showing <span id="shown">1</span>' in dom
    assert dom.count('class="cluster hidden"') == 5
