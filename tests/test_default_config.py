"""The shipped dataset.toml is valid for every stage (a typo there would break `make dataset` for everyone)."""

from __future__ import annotations

from pathlib import Path

from crawler import config as crawler_config
from dedup import config as dedup_config
from facecrop import config as facecrop_config
from pipeline.config import read_config
from train import config as train_config


def test_every_stage_accepts_the_default_config(repo_root: Path) -> None:
    path = repo_root / "dataset.toml"
    config = read_config(path)
    settings = crawler_config.load(config)
    assert [s.kind for s in settings.sources] == ["getchu"]
    assert settings.crawler.rate_per_host == 1.0
    assert facecrop_config.load(config).min_size == 64
    assert dedup_config.load(config).threshold == 4
    assert train_config.load(config).batch_size == 64
