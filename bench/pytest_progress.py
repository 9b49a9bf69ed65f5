"""A pytest plugin (`-p bench.pytest_progress`) that appends each finished test's outcome to the file
named by $BENCH_TEST_PROGRESS as it happens. JUnit XML is written only at the end, so a test run stopped
at its time share would otherwise say nothing about the tests that did finish."""

from __future__ import annotations

import json
import os

import pytest

ENV = "BENCH_TEST_PROGRESS"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A module that fails to import runs none of its tests: that is an error, not zero tests."""
    if report.failed:
        _append(report.nodeid, "error", 0.0, str(report.longrepr)[-1500:])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and report.outcome == "passed":
        return
    outcome = report.outcome
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    message = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2])
    elif report.failed:
        message = str(report.longrepr)[-1500:]
    _append(report.nodeid, outcome, report.duration, message)


def _append(test: str, outcome: str, seconds: float, message: str) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"test": test, "outcome": outcome, "seconds": round(seconds, 2), "message": message}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
