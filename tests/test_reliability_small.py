"""Small reliability rules, each through the real CLI: a URL list with nothing fetchable in it is a
config error naming its first bad line, not a network failure and not a quiet success."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.layout import Layout
from tests.helpers.cli import one_line, run_stage

BAD_LISTS = {
    "prose and other schemes": "# my list\n\nnot a url\nftp://example.com/a.png\n",
    "spaces and bad ports": "\nhttp://exa mple.com/a.png\nhttp://example.com:99999/b.png\nhttp://[::1/c.png\n",
    "no host": "# only comments above\nhttp:///a.png\nexample.com/a.png\n",
}
FIRST_BAD = {"prose and other schemes": 3, "spaces and bad ports": 2, "no host": 2}


def _urls_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "urls.txt").write_text(text, encoding="utf-8")
    config = tmp_path / "dataset.toml"
    config.write_text(
        '[crawler]\nrate_per_host = 0\nretries = 0\n[[sources]]\nkind = "urls"\nfile = "urls.txt"\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("case", BAD_LISTS)
def test_a_url_list_with_no_fetchable_line_is_a_config_error_naming_the_first(
    tmp_path: Path, case: str
) -> None:
    config = _urls_config(tmp_path, BAD_LISTS[case])
    result = run_stage("crawler", tmp_path / "data", config)
    assert result.returncode == ConfigError.exit_code, result.stderr
    line = one_line(result, "crawler")
    assert f"{tmp_path / 'urls.txt'}:{FIRST_BAD[case]}: " in line, line
    assert "No network" not in line
    db = sqlite3.connect(Layout(tmp_path / "data").crawl_state)
    assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0  # refused before anything was listed
    db.close()


def test_a_url_list_with_one_fetchable_line_is_crawled(tmp_path: Path) -> None:
    """Its bad lines fail alone (bad_url) as before; the good one is tried (here: nothing listens)."""
    config = _urls_config(tmp_path, "not a url\nhttp://127.0.0.1:9/a.png\n")
    result = run_stage("crawler", tmp_path / "data", config)
    assert result.returncode != ConfigError.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert "bad_url" in result.stderr
    assert Layout(tmp_path / "data").raw_manifest.exists()


WRONG_ONE_KEY = {
    # stage, its TOML, the one key that is wrong, keys the message must not name (they were fine or unset)
    "max_redirects": ("crawler", "[crawler]\nmax_redirects = -1\n", ["max_stale_pages"]),
    "max_stale_pages": ("crawler", "[crawler]\nmax_stale_pages = 0\n", ["max_redirects"]),
    "max_pixels": ("crawler", "[crawler]\nmax_pixels = 0\n", ["max_bytes"]),
    "checkpoint_seconds": ("crawler", "[crawler]\ncheckpoint_seconds = -5\n", ["connect_timeout"]),
    "align_eye_y": ("facecrop", "[facecrop]\nalign_eye_y = 2.0\n", ["align_eye_x"]),
}


@pytest.mark.parametrize("key", WRONG_ONE_KEY)
def test_a_bad_setting_is_one_line_naming_only_that_key(tmp_path: Path, key: str) -> None:
    name, toml, innocent = WRONG_ONE_KEY[key]
    config = tmp_path / "dataset.toml"
    config.write_text(toml, encoding="utf-8")
    result = run_stage(name, tmp_path / "data", config)
    assert result.returncode == ConfigError.exit_code, result.stderr
    line = one_line(result, name)
    assert key in line, line
    assert not [other for other in innocent if other in line], line
