"""The shared test data beside the repository (../shared), and what a test does when something it
needs is not on this machine: skip with a reason, or fail when REQUIRE_TESTDATA=1 (as CI sets it).

The shared anime images are third-party artwork that never enters the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.helpers.cli import REPO

SHARED = REPO.parent / "shared"


def unavailable(message: str) -> NoReturn:
    """Skip the test saying `message`, or fail it under REQUIRE_TESTDATA=1."""
    if os.environ.get("REQUIRE_TESTDATA") == "1":
        pytest.fail(f"REQUIRE_TESTDATA=1 but {message}")
    pytest.skip(message)


def shared_path(env_var: str, default: Path, what: str) -> Path:
    """`$env_var` or `default`, resolved, when it exists; otherwise `unavailable`."""
    path = Path(os.environ.get(env_var, default)).resolve()
    if not path.exists():
        unavailable(f"{what} not found at {path} (set {env_var} to its location)")
    return path
