"""The Makefile and the README keep their promises: paths with spaces, and the exit-code table.

`make dataset DATA="my data"` used to split the path into two arguments; every variable that
names a path is quoted now. The README's exit-code table is `pipeline.errors.EXIT_CODES`, word for
word, so a new code (like `Locked`'s 7) cannot be documented in one place and not the other.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import EXIT_CODES
from pipeline.layout import Layout
from tests.helpers.cli import REPO, cli_env
from tests.helpers.real_data import write_folder_config

STAMP = ".venv/.installed-test"  # the Makefile's venv stamp: `-o` keeps make from reinstalling


@pytest.mark.testdata
def test_make_targets_take_paths_with_spaces(tmp_path: Path, testdata: Path, cascade_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path / "with spaces"
    art = root / "my art"
    art.mkdir(parents=True)
    for name in ("style2paints_refs__1.png", "style2paints_refs__10.png"):
        shutil.copy(testdata / "full" / name, art / name)
    config = write_folder_config(root / "my config.toml", art)
    data = root / "my data"
    env = cli_env(ANIMEFACE_CASCADE=str(cascade_path))
    for target in ("dataset", "rejects"):
        result = subprocess.run(
            ["make", "-s", "-o", STAMP, target, f"DATA={data}", f"CONFIG={config}", "ARGS=--no-progress"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    layout = Layout(data)
    assert layout.raw_manifest.is_file() and layout.crops_manifest.is_file() and layout.shard_npy.is_file()
    assert layout.rejects_page.is_file()
    assert not (REPO / "data" / "my").exists() and not Path("my").exists()


def test_the_readme_exit_code_table_is_pipeline_errors() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, flags=re.MULTILINE))
    assert {int(code): text for code, text in table.items()} == EXIT_CODES
