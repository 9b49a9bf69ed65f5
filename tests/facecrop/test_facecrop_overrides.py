"""promote / demote: visible in the manifest at once, and kept by every later run."""

from __future__ import annotations

import json

import pytest
from conftest import build_data, facecrop, read_manifest, shared_images, write_config

pytestmark = pytest.mark.testdata

NAMES = ("bizarre__megumin.png", "gfpgan_realphoto__00.jpg", "waifu2x__miku_bg.png", "mit_en__Wikipe-tan_manga_page1.jpg")


@pytest.fixture
def small_run(tmp_path, testdata, cascade_path):
    data = tmp_path / "data"
    files = [p for p in shared_images(testdata, "full", "negative") if p.name in NAMES]
    build_data(data, files)
    config = write_config(tmp_path / "dataset.toml")
    facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    return data, config


def _row(data, crop_id):
    return next(r for r in read_manifest(data) if r["id"] == crop_id)


def test_promote_and_demote_update_manifest_files_and_survive_reruns(small_run, cascade_path):
    data, config = small_run
    rows = read_manifest(data)
    rejected = next(r for r in rows if r["reason"] == "not_verified")
    accepted = next(r for r in rows if r["decision"] == "accepted")
    common = ("--config", str(config), "--data", str(data))

    facecrop("promote", rejected["id"], *common, cascade=cascade_path)
    facecrop("demote", accepted["id"], "--reason", "wrong_character", *common, cascade=cascade_path)

    def check():
        promoted, demoted = _row(data, rejected["id"]), _row(data, accepted["id"])
        assert (promoted["decision"], promoted["reason"], promoted["override"]) == ("accepted", None, "promote")
        assert promoted["path"] == f"crops/{rejected['id']}.png" and (data / promoted["path"]).is_file()
        assert not (data / rejected["path"]).exists()
        assert (demoted["decision"], demoted["reason"], demoted["override"]) == ("rejected", "wrong_character", "demote")
        assert demoted["path"] == f"rejects/wrong_character/{accepted['id']}.png" and (data / demoted["path"]).is_file()
        assert not (data / accepted["path"]).exists()
        assert promoted["auto_reason"] == "not_verified" and demoted["auto_decision"] == "accepted"

    check()
    log = [json.loads(line) for line in (data / "crops" / "overrides.jsonl").read_text().splitlines()]
    assert [(r["id"], r["action"], r["reason"]) for r in log] == [
        (rejected["id"], "promote", None),
        (accepted["id"], "demote", "wrong_character"),
    ]
    facecrop(*common, "--no-progress", cascade=cascade_path)  # nothing new
    check()
    # New settings redo every source; the person's decisions still win.
    write_config(config, "[facecrop.thresholds]\nmin_sharpness = 101.0\n")
    result = facecrop(*common, "--no-progress", cascade=cascade_path)
    assert "images processed now               4" in result.stderr
    check()
    page = (data / "rejects" / "index.html").read_text()
    assert accepted["id"] in page and rejected["id"] not in page


def test_overrule_errors_are_clear(small_run, cascade_path):
    data, config = small_run
    common = ("--config", str(config), "--data", str(data))
    result = facecrop("promote", "nosuchid_1_2_3_4", *common, cascade=cascade_path, check=False)
    assert result.returncode == 1 and "unknown crop id" in result.stderr
    some_id = read_manifest(data)[0]["id"]
    result = facecrop("demote", some_id, "--reason", "../../etc", *common, cascade=cascade_path, check=False)
    assert result.returncode == 2 and "reason" in result.stderr
    assert not (data / "crops" / "overrides.jsonl").exists()


def test_options_work_after_and_before_the_subcommand(small_run, cascade_path):
    data, config = small_run
    before = facecrop("--data", str(data), "--config", str(config), "rejects", cascade=cascade_path).stdout
    after = facecrop("rejects", "--data", str(data), "--config", str(config), cascade=cascade_path).stdout
    assert before == after and "per reason" in after
    html = facecrop("rejects", "--html", "--data", str(data), "--config", str(config), cascade=cascade_path).stdout
    assert str(data / "rejects" / "index.html") in html
