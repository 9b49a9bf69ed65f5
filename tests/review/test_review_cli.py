"""`animefaces review` / `python -m review` as entry points: exit codes, one-line errors, clean stops."""

from __future__ import annotations

import json
import signal
import subprocess

from bench.bench_review import make_data
from pipeline.layout import Layout, rel_reject
from tests.helpers.cli import run_cli, start_cli
from tests.helpers.files import jsonl_rows
from tests.helpers.review import http, running_app


def review_cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("animefaces review", *args, timeout=120)


def test_without_crops_it_says_which_stage_to_run_exit_4(tmp_path):
    result = review_cli("--data", str(tmp_path / "data"))
    assert result.returncode == 4
    assert result.stderr.strip().startswith("review: no crops manifest") and "Traceback" not in result.stderr


def test_a_config_typo_is_exit_2(tmp_path):
    make_data(tmp_path / "data", 10)
    config = tmp_path / "typo.toml"
    config.write_text("[facecrop]\nmin_fase = 3\n")
    result = review_cli("--data", str(tmp_path / "data"), "--config", str(config))
    assert result.returncode == 2 and "unknown key" in result.stderr


def test_sigterm_stops_it_like_ctrl_c(tmp_path):
    data = tmp_path / "data"
    make_data(data, 10)
    process = start_cli("animefaces review", "--data", data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith("review: http://127.0.0.1:")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "stopped" in out, err


def test_animefaces_review_and_python_m_review_serve_the_same_app(tmp_path):
    data = tmp_path / "data"
    make_data(data, 10)
    with running_app(data) as url:  # python -m review; Ctrl-C checked on the way out
        assert url.startswith("http://127.0.0.1:")
    assert "--host" in review_cli("--help").stdout


def test_the_cli_and_the_app_write_one_log_and_each_sees_the_other(tmp_path):
    """`facecrop promote` while the app runs: the app shows it at once; the app's demote follows it in the log."""
    data = tmp_path / "data"
    ids = make_data(data, 60)
    crop = ids["rejected"][0]
    with running_app(data) as url:
        base = url.split("?")[0].rstrip("/")
        token = url.split("token=")[1]
        run_cli("facecrop", "promote", crop, "--data", data, check=True)
        card = json.loads(http(f"{base}/api/crop?id={crop}")[1])
        assert card["decision"] == "accepted" and card["override"] == "promote" and not card["pending"]
        status, _ = http(
            f"{base}/api/crops",
            json.dumps({"items": [{"id": crop, "action": "demote", "reason": "hand"}]}).encode(),
            {"Content-Type": "application/json", "X-Review-Token": token, "Origin": base},
        )
        assert status == 200
    assert [(r["action"], r["reason"]) for r in jsonl_rows(Layout(data).overrides_log, missing_ok=True)] == [
        ("promote", None),
        ("demote", "hand"),
    ]
    # the CLI still works after
    run_cli("facecrop", "demote", ids["accepted"][0], "--reason", "cli", "--data", data, check=True)
    assert Layout(data).path(rel_reject("cli", ids["accepted"][0])).is_file()
