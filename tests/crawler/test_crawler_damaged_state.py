"""A crawl.sqlite damaged inside its rows or schema, through the real crawler CLI.

Text that is not UTF-8 is damage to the whole record: one line naming the file and the fix, the
manifest as it was. JSON that does not parse costs only its row: one warning naming the file,
the table and the row id, the row redone (a page fetched again, an item's meta taken again
from its listing) and the manifest written as always.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pipeline.atomic import read_jsonl
from pipeline.layout import Layout
from tests.helpers.cli import one_line

IMAGES = ["i2v__miku.jpg", "waifu2x__miku_small.png", "realesrgan__0030.jpg"]


def warnings(result: subprocess.CompletedProcess) -> list[str]:
    """The crawler's lines that are not its closing summary (whose rows are indented)."""
    return [line for line in result.stderr.splitlines() if line.startswith("crawler: ")]


def edit(path: Path, *statements: str | tuple[str, tuple]) -> None:
    """Change the state file as a person or a bad copy would, with SQLite itself (not the crawler's code)."""
    db = sqlite3.connect(path)
    for statement in statements:
        sql, params = statement if isinstance(statement, tuple) else (statement, ())
        db.execute(sql, params)
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def rowid_of(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    (rowid,) = db.execute("SELECT rowid FROM items WHERE url LIKE ?", (f"%/{name}",)).fetchone()
    db.close()
    return rowid


@pytest.fixture
def crawled(testdata: Path, write_config, run_crawler, tmp_path: Path) -> tuple[Path, Path]:
    """A finished crawl of a folder of real images: (config, DATA)."""
    art = tmp_path / "art"
    art.mkdir()
    for name in IMAGES:
        (art / name).write_bytes((testdata / "full" / name).read_bytes())
    config = write_config([{"kind": "folder", "path": str(art)}])
    data = tmp_path / "data"
    first = run_crawler(config, data)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    assert len(read_jsonl(Layout(data).raw_manifest)) == len(IMAGES)
    return config, data


NOT_UTF8 = {
    # SQLite's own check quotes the bad name; the sqlite3 module cannot build that error's text.
    "in the schema": (
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET name = CAST(X'6974656d73ff' AS TEXT) WHERE name = 'items_by_sha'",
    ),
    "in a row": ("UPDATE items SET url = CAST(X'66696c653aff' AS TEXT) WHERE rowid = 1",),
    "in an item's meta": ("UPDATE items SET meta = CAST(X'7bff7d' AS TEXT) WHERE rowid = 1",),
}


@pytest.mark.parametrize("where", NOT_UTF8)
def test_text_that_is_not_utf8_is_one_line_naming_the_file(crawled, run_crawler, where: str) -> None:
    config, data = crawled
    state = Layout(data).crawl_state
    manifest = Layout(data).raw_manifest.read_bytes()
    edit(state, *NOT_UTF8[where])
    result = run_crawler(config, data)
    assert result.returncode == 1, result.stderr
    line = one_line(result, "crawler")
    assert str(state) in line and "is damaged" in line and "move it aside" in line, line
    assert Layout(data).raw_manifest.read_bytes() == manifest  # kept as it was


@pytest.mark.parametrize("broken", ["{broken", "[1, 2]", "[" * 100_000])
def test_an_item_meta_that_does_not_parse_is_named_and_taken_again(crawled, run_crawler, broken: str) -> None:
    config, data = crawled
    state = Layout(data).crawl_state
    manifest = Layout(data).raw_manifest.read_bytes()
    rowid = rowid_of(state, IMAGES[1])
    edit(state, ("UPDATE items SET meta = ? WHERE rowid = ?", (broken, rowid)))
    result = run_crawler(config, data)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    said = warnings(result)
    assert len(said) == 1, result.stderr
    assert str(state) in said[0] and "table items" in said[0] and f"row id {rowid}" in said[0], said[0]
    assert Layout(data).raw_manifest.read_bytes() == manifest  # its meta came back from the listing

    again = run_crawler(config, data)  # redone: nothing left to say
    assert again.returncode == 0 and warnings(again) == [], again.stderr


def test_a_broken_meta_never_stops_the_manifest(crawled, run_crawler) -> None:
    """The item's image is no longer listed (its file left the folder): its meta cannot be taken
    again, and the manifest is still written, that row with meta {}."""
    config, data = crawled
    state = Layout(data).crawl_state
    rowid = rowid_of(state, IMAGES[0])
    edit(state, ("UPDATE items SET meta = ? WHERE rowid = ?", ("{broken", rowid)))
    (data.parent / "art" / IMAGES[0]).unlink()
    Layout(data).raw_manifest.unlink()
    result = run_crawler(config, data)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert any("table items" in line and f"row id {rowid}" in line for line in warnings(result)), (
        result.stderr
    )
    rows = read_jsonl(Layout(data).raw_manifest)
    assert len(rows) == len(IMAGES)
    orphan = [row for row in rows if row["url"].endswith("/" + IMAGES[0])]
    assert len(orphan) == 1 and orphan[0]["meta"] == {} and orphan[0]["provenance"][0]["meta"] == {}


def test_a_page_result_that_does_not_parse_is_fetched_again(
    site_server, make_danbooru_post, small_images, write_config, run_crawler, tmp_path
) -> None:
    server = site_server()
    posts = [make_danbooru_post(server, 900 - k, small_images[k]) for k in range(3)]
    json_headers = {"Content-Type": "application/json; charset=utf-8"}
    first_page = "/posts.json?tags=1girl+solo&limit=3"
    server.route(first_page, server.Reply(200, json.dumps(posts).encode(), json_headers))
    server.route("/posts.json?tags=1girl+solo&limit=3&page=b898", server.Reply(200, b"[]", json_headers))
    config = write_config(
        [{"kind": "danbooru", "base_url": server.base, "tags": "1girl solo", "per_page": 3}]
    )
    data = tmp_path / "data"
    assert run_crawler(config, data).returncode == 0
    manifest = Layout(data).raw_manifest.read_bytes()
    state = Layout(data).crawl_state
    db = sqlite3.connect(state)
    (rowid,) = db.execute("SELECT rowid FROM pages WHERE url LIKE ?", ("%limit=3",)).fetchone()
    db.close()
    edit(state, ("UPDATE pages SET result = ? WHERE rowid = ?", ("{broken", rowid)))
    asked = len(server.hits(first_page))

    result = run_crawler(config, data)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    said = [line for line in warnings(result) if "table pages" in line]
    assert len(said) == 1 and str(state) in said[0] and f"row id {rowid}" in said[0], result.stderr
    assert len(server.hits(first_page)) == asked + 1  # fetched again
    assert Layout(data).raw_manifest.read_bytes() == manifest
