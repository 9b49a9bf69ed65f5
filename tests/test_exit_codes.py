"""The same kind of failure ends with the same exit code, and one line, in every stage's CLI.

Each case runs every stage as a user does (`python -m STAGE`, and the `animefaces` console
script) on real files, and checks the code against `pipeline.errors`: a config error is 2,
a missing earlier output is 4, a path that cannot be read or written is 1 - never a traceback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import atomic
from pipeline.errors import ConfigError, InputMissing, PipelineError
from pipeline.layout import Layout, rel_crop, rel_raw
from pipeline.shard import write_shard
from tests.helpers.cli import one_line, run_cli
from tests.helpers.train import write_train_config

# stage name in `animefaces` -> its `python -m` module (and subcommand)
STAGES = {
    "crawl": "crawler",
    "facecrop": "facecrop",
    "dedup": "dedup",
    "train": "train",
    "summary": "pipeline summary",
}
READS_CONFIG = ("crawl", "facecrop", "dedup", "train")
NEEDS_EARLIER_OUTPUT = ("facecrop", "dedup", "train", "summary")

TYPO_CONFIG = """
[crawler]
rate_per_hots = 1.0
[facecrop]
min_fase = 64
[dedup]
threshhold = 4
[train]
lr_gg = 0.1
"""


def run_as(how: str, stage: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`stage` run the `how` way: `python -m MODULE` or the `animefaces` console script."""
    return run_cli(f"animefaces {stage}" if how == "animefaces" else STAGES[stage], *args, cwd=cwd)


def label(stage: str) -> str:
    """The prefix a stage's error line carries."""
    return {"crawl": "crawler", "summary": "pipeline"}.get(stage, stage)


HOW = ("python -m", "animefaces")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage", READS_CONFIG)
def test_unknown_config_key_is_2_everywhere(tmp_path: Path, stage: str, how: str) -> None:
    config = tmp_path / "typo.toml"
    config.write_text(TYPO_CONFIG)
    result = run_as(how, stage, ["--config", str(config), "--data", str(tmp_path / "data")], tmp_path)
    assert result.returncode == ConfigError.exit_code == 2, result.stderr
    assert "unknown key" in one_line(result, label(stage))


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage", STAGES)
def test_unknown_flag_is_2_everywhere(tmp_path: Path, stage: str, how: str) -> None:
    result = run_as(how, stage, ["--no-such-flag"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--no-such-flag" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage", NEEDS_EARLIER_OUTPUT)
def test_missing_earlier_output_is_4_everywhere(tmp_path: Path, stage: str, how: str) -> None:
    """An empty DATA: every stage after the crawler says which stage to run first."""
    data = tmp_path / "data"
    data.mkdir()
    config = write_train_config(tmp_path / "ok.toml")
    extra = (
        ["--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--max-steps", "1"]
        if stage == "train"
        else []
    )
    result = run_as(how, stage, ["--config", str(config), "--data", str(data), *extra], tmp_path)
    assert result.returncode == InputMissing.exit_code == 4, result.stderr
    line = one_line(result, label(stage))
    assert "first" in line and str(data) in line


# ---------------------------------------------------------------- an output path that cannot be written


def _image(path: Path, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path, format="PNG")
    return path.read_bytes()


def blocked(stage: str, tmp_path: Path, cascade: Path) -> list[str]:
    """A DATA whose earlier outputs are fine but where `stage` must write into a path that is a file."""
    data = tmp_path / "data"
    layout = Layout(data)
    data.mkdir()
    config = write_train_config(tmp_path / "ok.toml")
    args = ["--config", str(config), "--data", str(data)]
    if stage == "crawl":
        folder = tmp_path / "art"
        folder.mkdir()
        _image(folder / "a.png", 0)
        config.write_text(f'[crawler]\nrate_per_host = 0\n[[sources]]\nkind = "folder"\npath = "{folder}"\n')
        layout.raw_dir.write_text("not a folder")
    elif stage == "facecrop":
        layout.raw_manifest.parent.mkdir(parents=True)
        layout.raw_manifest.write_text("")
        layout.crops_dir.write_text("not a folder")
        args += ["--cascade", str(cascade)]
    elif stage == "dedup":
        layout.crops_dir.mkdir()
        crop_id = "a" * 12 + "_0_0_96_96"
        _image(layout.path(rel_crop(crop_id)), 1)
        atomic.write_jsonl(
            layout.crops_manifest,
            [
                {
                    "id": crop_id,
                    "source_sha256": "a" * 64,
                    "source_path": rel_raw("a" * 64, "png"),
                    "box": [0, 0, 96, 96],
                    "size": 96,
                    "decision": "accepted",
                    "reason": None,
                    "path": rel_crop(crop_id),
                    "override": None,
                }
            ],
        )
        layout.dedup_dir.write_text("not a folder")
    elif stage == "train":
        write_shard(
            data,
            iter(np.zeros((16, 64, 64, 3), np.uint8)),
            16,
            (64, 64, 3),
            ids=[f"f{i}" for i in range(16)],
            labels={"hair_color": [None] * 16},
            config={},
        )
        runs = tmp_path / "runs"
        runs.write_text("not a folder")
        args += ["--runs-dir", str(runs), "--device", "cpu", "--max-steps", "1"]
    elif stage == "summary":
        atomic.write_jsonl(layout.raw_manifest, [])
        layout.crops_manifest.mkdir(parents=True)  # a folder where a file should be: unreadable
    return args


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage", STAGES)
def test_unwritable_or_unreadable_path_is_1_and_one_line(
    tmp_path: Path, stage: str, how: str, cascade_path: Path
) -> None:
    result = run_as(how, stage, blocked(stage, tmp_path, cascade_path), tmp_path)
    assert result.returncode == PipelineError.exit_code == 1, result.stderr
    line = one_line(result, label(stage))
    assert str(tmp_path) in line, line


def test_dataset_stops_at_the_first_failing_stage_with_its_code(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text(TYPO_CONFIG)
    result = run_cli("animefaces dataset", "--config", config, "--data", tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result, "crawler")  # the crawler's line only: facecrop, dedup and summary never ran
