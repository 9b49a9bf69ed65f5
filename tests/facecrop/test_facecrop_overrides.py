"""promote / demote: visible in the manifest at once, and kept by every later run."""

from __future__ import annotations

import json

import pytest

from pipeline.layout import Layout, rel_crop, rel_reject
from tests.helpers.cli import run_cli, run_stage
from tests.helpers.configs import write_facecrop_config
from tests.helpers.crops import read_crops_manifest
from tests.helpers.raw import shared_images, store_raw

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
    store_raw(data, files)
    config = write_facecrop_config(tmp_path / "dataset.toml")
    run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    return data, config


def _row(data, crop_id):
    return next(r for r in read_crops_manifest(data) if r["id"] == crop_id)


def test_promote_and_demote_update_manifest_files_and_survive_reruns(small_run, cascade_path):
    data, config = small_run
    rows = read_crops_manifest(data)
    rejected = next(r for r in rows if r["reason"] == "not_verified")
    accepted = next(r for r in rows if r["decision"] == "accepted")
    common = ("--config", str(config), "--data", str(data))

    run_cli("facecrop", "promote", rejected["id"], *common, "--cascade", cascade_path, check=True)
    run_cli(
        "facecrop",
        "demote",
        accepted["id"],
        "--reason",
        "wrong_character",
        *common,
        "--cascade",
        cascade_path,
        check=True,
    )

    def check(verifier_on=True):
        promoted, demoted = _row(data, rejected["id"]), _row(data, accepted["id"])
        assert (promoted["decision"], promoted["reason"], promoted["override"]) == (
            "accepted",
            None,
            "promote",
        )
        assert promoted["path"] == rel_crop(rejected["id"]) and (data / promoted["path"]).is_file()
        assert not (data / rejected["path"]).exists()
        assert (demoted["decision"], demoted["reason"], demoted["override"]) == (
            "rejected",
            "wrong_character",
            "demote",
        )
        assert (
            demoted["path"] == rel_reject("wrong_character", accepted["id"])
            and (data / demoted["path"]).is_file()
        )
        assert not (data / accepted["path"]).exists()
        # What the rules would say stays visible; with the verifier off the photo's box passes them.
        assert promoted["auto_reason"] == ("not_verified" if verifier_on else None)
        assert demoted["auto_decision"] == "accepted"

    check()
    log = [json.loads(line) for line in Layout(data).overrides_log.read_text().splitlines()]
    assert [(r["id"], r["action"], r["reason"]) for r in log] == [
        (rejected["id"], "promote", None),
        (accepted["id"], "demote", "wrong_character"),
    ]
    run_cli("facecrop", *common, "--no-progress", "--cascade", cascade_path, check=True)  # nothing new
    check()
    # New detection settings redo every source; the person's decisions still win.
    write_facecrop_config(config, "margin = 0.3\n")
    result = run_cli("facecrop", *common, "--no-progress", "--cascade", cascade_path, check=True)
    assert "images processed now               4" in result.stderr
    check()
    write_facecrop_config(
        config,
        'margin = 0.3\nverifier = "off"\n[facecrop.thresholds]\nmin_colors = 0\nmin_saturation = 0.0\n',
    )
    result = run_cli("facecrop", *common, "--no-progress", "--cascade", cascade_path, check=True)
    assert "images processed now               0" in result.stderr
    check(verifier_on=False)
    page = Layout(data).rejects_page.read_text()
    assert accepted["id"] in page and rejected["id"] not in page


def test_overrule_errors_are_clear(small_run, cascade_path):
    data, config = small_run
    common = ("--config", str(config), "--data", str(data))
    result = run_cli("facecrop", "promote", "nosuchid_1_2_3_4", *common, "--cascade", cascade_path)
    assert result.returncode == 1 and "unknown crop id" in result.stderr
    some_id = read_crops_manifest(data)[0]["id"]
    result = run_cli(
        "facecrop", "demote", some_id, "--reason", "../../etc", *common, "--cascade", cascade_path
    )
    assert result.returncode == 2 and "reason" in result.stderr
    assert not Layout(data).overrides_log.exists()


def test_options_work_after_and_before_the_subcommand(small_run, cascade_path):
    data, config = small_run
    before = run_cli(
        "facecrop",
        "--data",
        str(data),
        "--config",
        str(config),
        "rejects",
        "--cascade",
        cascade_path,
        check=True,
    ).stdout
    after = run_cli(
        "facecrop",
        "rejects",
        "--data",
        str(data),
        "--config",
        str(config),
        "--cascade",
        cascade_path,
        check=True,
    ).stdout
    assert before == after and "per reason" in after
    html = run_cli(
        "facecrop",
        "rejects",
        "--html",
        "--data",
        str(data),
        "--config",
        str(config),
        "--cascade",
        cascade_path,
        check=True,
    ).stdout
    assert str(Layout(data).rejects_page) in html


def test_a_decision_logged_before_a_kill_is_finished_by_the_next_run(small_run, cascade_path):
    """promote appends to the log first; if killed before moving the file, the next run moves it."""
    data, config = small_run
    rejected = next(r for r in read_crops_manifest(data) if r["decision"] == "rejected" and r["path"])
    log = Layout(data).overrides_log
    log.write_text(json.dumps({"id": rejected["id"], "action": "promote", "reason": None, "at": "x"}) + "\n")
    run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    row = _row(data, rejected["id"])
    assert (row["decision"], row["override"]) == ("accepted", "promote")
    assert (data / row["path"]).is_file() and not (data / rejected["path"]).exists()


def test_one_worker_in_process_gives_the_same_manifest(small_run, cascade_path, tmp_path):
    data, config = small_run
    before = Layout(data).crops_manifest.read_bytes()
    write_facecrop_config(config, "workers = 1\n")  # workers is not part of the fingerprint: nothing to redo
    result = run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    assert "images processed now               0" in result.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    Layout(fresh).raw_dir.symlink_to(Layout(data).raw_dir)
    run_stage("facecrop", fresh, config, cascade=cascade_path, check=True)
    assert Layout(fresh).crops_manifest.read_bytes() == before


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
    write_facecrop_config(config, settings)
    result = run_stage("facecrop", data, config, cascade=cascade_path, check=True)
    assert f"images processed now               {redone}" in result.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    Layout(fresh).raw_dir.symlink_to(Layout(data).raw_dir)
    run_stage("facecrop", fresh, config, cascade=cascade_path, check=True)
    assert Layout(data).crops_manifest.read_bytes() == Layout(fresh).crops_manifest.read_bytes()
    if "unsure" in settings:
        rows = [r for r in read_crops_manifest(data) if r["box"] and r["reason"] != "low_color"]
        assert {r["likelihood"] is None for r in rows if r["confidence"] >= 3.0} == {True}
        assert {r["likelihood"] is None for r in rows if r["confidence"] < 3.0} == {False}
    assert sorted(p.relative_to(data) for p in data.glob("*/**/*.png")) == sorted(
        p.relative_to(fresh) for p in fresh.glob("*/**/*.png")
    )
