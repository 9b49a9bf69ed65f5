"""promote / demote: visible in the manifest at once, and kept by every later run."""

from __future__ import annotations

import json

import pytest
from facecrop_testlib import build_data, facecrop, read_manifest, shared_images, write_config

pytestmark = pytest.mark.testdata

NAMES = (
    "bizarre__megumin.png",
    "gfpgan_realphoto__00.jpg",
    "waifu2x__miku_bg.png",
    "mit_en__Wikipe-tan_manga_page1.jpg",
)


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

    def check(verifier_on=True):
        promoted, demoted = _row(data, rejected["id"]), _row(data, accepted["id"])
        assert (promoted["decision"], promoted["reason"], promoted["override"]) == (
            "accepted",
            None,
            "promote",
        )
        assert promoted["path"] == f"crops/{rejected['id']}.png" and (data / promoted["path"]).is_file()
        assert not (data / rejected["path"]).exists()
        assert (demoted["decision"], demoted["reason"], demoted["override"]) == (
            "rejected",
            "wrong_character",
            "demote",
        )
        assert (
            demoted["path"] == f"rejects/wrong_character/{accepted['id']}.png"
            and (data / demoted["path"]).is_file()
        )
        assert not (data / accepted["path"]).exists()
        # What the rules would say stays visible; with the verifier off the photo's box passes them.
        assert promoted["auto_reason"] == ("not_verified" if verifier_on else None)
        assert demoted["auto_decision"] == "accepted"

    check()
    log = [json.loads(line) for line in (data / "crops" / "overrides.jsonl").read_text().splitlines()]
    assert [(r["id"], r["action"], r["reason"]) for r in log] == [
        (rejected["id"], "promote", None),
        (accepted["id"], "demote", "wrong_character"),
    ]
    facecrop(*common, "--no-progress", cascade=cascade_path)  # nothing new
    check()
    # New detection settings redo every source; the person's decisions still win.
    write_config(config, "margin = 0.3\n")
    result = facecrop(*common, "--no-progress", cascade=cascade_path)
    assert "images processed now               4" in result.stderr
    check()
    write_config(
        config,
        'margin = 0.3\nverifier = "off"\n[facecrop.thresholds]\nmin_colors = 0\nmin_saturation = 0.0\n',
    )
    result = facecrop(*common, "--no-progress", cascade=cascade_path)
    assert "images processed now               0" in result.stderr
    check(verifier_on=False)
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
    html = facecrop(
        "rejects", "--html", "--data", str(data), "--config", str(config), cascade=cascade_path
    ).stdout
    assert str(data / "rejects" / "index.html") in html


def test_a_decision_logged_before_a_kill_is_finished_by_the_next_run(small_run, cascade_path):
    """promote appends to the log first; if killed before moving the file, the next run moves it."""
    data, config = small_run
    rejected = next(r for r in read_manifest(data) if r["decision"] == "rejected" and r["path"])
    log = data / "crops" / "overrides.jsonl"
    log.write_text(json.dumps({"id": rejected["id"], "action": "promote", "reason": None, "at": "x"}) + "\n")
    facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    row = _row(data, rejected["id"])
    assert (row["decision"], row["override"]) == ("accepted", "promote")
    assert (data / row["path"]).is_file() and not (data / rejected["path"]).exists()


def test_one_worker_in_process_gives_the_same_manifest(small_run, cascade_path, tmp_path):
    data, config = small_run
    before = (data / "crops" / "manifest.jsonl").read_bytes()
    write_config(config, "workers = 1\n")  # workers is not part of the fingerprint: nothing to redo
    result = facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    assert "images processed now               0" in result.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "raw").symlink_to(data / "raw")
    facecrop("--config", str(config), "--data", str(fresh), "--no-progress", cascade=cascade_path)
    assert (fresh / "crops" / "manifest.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    ("settings", "redone"),
    [
        # Thresholds and verifier "off": decided again from stored values, no image re-read.
        ('verifier = "off"\n[facecrop.thresholds]\nmin_colors = 0\nmin_saturation = 0.0\n', 0),
        # Policy "unsure": confident boxes lose their verdict (a clean run would not verify them).
        ('verifier = "unsure"\nverify_below_confidence = 3.0\n', 0),
        # The grey manga faces now pass the colour rule and need a verdict they never got: that image is redone.
        ("[facecrop.thresholds]\nmin_colors = 0\nmin_saturation = 0.0\n", 1),
    ],
)
def test_threshold_change_gives_the_manifest_of_a_clean_run(
    small_run, cascade_path, tmp_path, settings, redone
):
    data, config = small_run
    write_config(config, settings)
    result = facecrop("--config", str(config), "--data", str(data), "--no-progress", cascade=cascade_path)
    assert f"images processed now               {redone}" in result.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "raw").symlink_to(data / "raw")
    facecrop("--config", str(config), "--data", str(fresh), "--no-progress", cascade=cascade_path)
    assert (data / "crops" / "manifest.jsonl").read_bytes() == (
        fresh / "crops" / "manifest.jsonl"
    ).read_bytes()
    if "unsure" in settings:
        rows = [r for r in read_manifest(data) if r["box"] and r["reason"] != "low_color"]
        assert {r["likelihood"] is None for r in rows if r["confidence"] >= 3.0} == {True}
        assert {r["likelihood"] is None for r in rows if r["confidence"] < 3.0} == {False}
    assert sorted(p.relative_to(data) for p in data.glob("*/**/*.png")) == sorted(
        p.relative_to(fresh) for p in fresh.glob("*/**/*.png")
    )
