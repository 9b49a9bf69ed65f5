"""The rejects page in a real headless Chromium: no console errors, the manifest's counts, escaped text."""

from __future__ import annotations

import collections

import cv2
import numpy as np
import pytest
from bs4 import BeautifulSoup

from facecrop import rejects_page
from facecrop.config import Thresholds
from pipeline.layout import Layout, rel_raw, rel_reject
from tests.helpers.browser import dump_dom, require_chromium
from tests.helpers.crops import read_crops_manifest

pytestmark = pytest.mark.testdata


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_chromium()


def render(url: str) -> tuple[BeautifulSoup, list[str]]:
    """The DOM after scripts ran, and every console message the page produced."""
    dom, console = dump_dom(url)
    return BeautifulSoup(dom, "html.parser"), console


def test_console_detection_works(chromium, tmp_path):
    """The control: a page with a script error must be caught, or the real check proves nothing."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = render(bad.as_uri())
    assert any("undefinedFunction" in line for line in console)


def test_page_shows_the_manifest_counts_without_console_errors(full_run, chromium):
    data = full_run["data"]
    rows = read_crops_manifest(data)
    expected = collections.Counter(r["reason"] for r in rows if r["decision"] == "rejected")
    dom, console = render(Layout(data).rejects_page.as_uri())
    assert console == []
    shown = {td["data-reason"]: int(td.get_text()) for td in dom.select("#summary td.count")}
    assert shown == dict(expected)
    for reason, count in expected.items():
        section = dom.select_one(f'section[data-reason="{reason}"]')
        cards = section.select(".card")
        assert len(cards) == min(count, 200)
        for card in cards:
            img = card.find("img")
            assert img["loading"] == "lazy" and not img["src"].startswith("data:")
            assert (Layout(data).rejects_dir / img["src"]).is_file()
            assert card.find("input")["value"].startswith(
                f"python -m facecrop promote {card['data-id']} --data "
            )
    # The hostile title from the crawled site is text on the page, never markup.
    texts = [div.get_text() for div in dom.select(".card .src")]
    assert any("<script>alert(1)</script>" in t for t in texts)
    assert any("<img src=x onerror=alert(2)>" in t for t in texts)
    assert len(dom.find_all("script")) == 2 and not dom.select('img[src="x"]')


def test_clicking_through_opens_the_source_with_the_box(full_run, chromium):
    data = full_run["data"]
    hostile = "<script>alert(1)</script>"  # the title full_run gave one rejected source
    row = next(
        r
        for r in read_crops_manifest(data)
        if r["reason"] == "not_verified" and r["meta"]["title"] == hostile
    )
    dom, console = render(Layout(data).rejects_page.as_uri() + f"#open={row['id']}")
    assert console == []
    viewer = dom.select_one("#viewer")
    assert "open" in viewer["class"]
    assert (Layout(data).rejects_dir / viewer.select_one("img")["src"]).resolve() == (
        data / row["source_path"]
    ).resolve()
    box = viewer.select_one(".box:not(.crop)")
    left = float(box["style"].split("left:")[1].split("%")[0])
    assert left == pytest.approx(100 * row["box"][0] / row["source_size"][0], rel=1e-3)
    assert hostile in viewer.get_text()


@pytest.mark.slow
def test_ten_thousand_rejects_stay_light_and_lazy(chromium, tmp_path):
    data = tmp_path / "data"
    thumb = cv2.imencode(".png", np.full((96, 96, 3), 128, np.uint8))[1].tobytes()
    rows = []
    for i in range(10_000):
        reason = ("blurry", "low_color", "crowded", "clipped")[i % 4]
        crop_id = f"{i:012x}_{i}_0_80_80"
        path = rel_reject(reason, crop_id)
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_bytes(thumb)
        rows.append(
            {
                "id": crop_id,
                "source_sha256": f"{i:064x}",
                "source_path": rel_raw(f"{i:064x}", "jpg"),
                "source_size": [800, 600],
                "box": [i, 0, 80, 80],
                "crop_box": [i - 20, -20, 120, 120],
                "size": 120,
                "confidence": 2.0,
                "decision": "rejected",
                "reason": reason,
                "auto_decision": "rejected",
                "auto_reason": reason,
                "values": {
                    "sharpness": float(i),
                    "saturation": 0.01,
                    "faces_in_image": 20,
                    "padding": 0.3,
                    "failed": [reason],
                },
                "path": path,
                "likelihood": None,
                "hair_color": None,
                "eye_colors": None,
                "override": None,
                "site": "s",
                "url": "https://example.org/x",
                "page_url": None,
                "meta": {"title": f"t{i}"},
            }
        )
    page = rejects_page.build(data, rows, Thresholds())
    assert page.stat().st_size < 10_000 * 1000  # under 1 kB per reject: links, no inline images
    dom, console = render(page.as_uri())
    assert console == []
    assert {td["data-reason"]: int(td.get_text()) for td in dom.select("#summary td.count")} == {
        "crowded": 2500,
        "clipped": 2500,
        "low_color": 2500,
        "blurry": 2500,
    }
    assert len(dom.select(".card")) == 4 * 200  # the rest render on "show more"
    blurry = [
        float(c.select_one(".value").get_text().split()[-1])
        for c in dom.select('section[data-reason="blurry"] .card')
    ]
    assert blurry == sorted(blurry)  # default sort: lowest value first
