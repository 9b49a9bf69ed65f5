"""Fixtures shared by every test: the real test data and the cascade, read in place.

The shared anime images are third-party artwork that never enters the repository.
On a user's machine without them the tests that need them skip with a reason; CI
sets REQUIRE_TESTDATA=1 so that their absence fails the run instead.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """A runner may start pytest with SIGINT ignored (a background job of a non-interactive shell).
    An ignored SIGINT is inherited by every stage a test starts, and the Ctrl-C tests could then not
    interrupt them; a handled one is reset to the default on exec, as in a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _require_or_skip(path: Path, what: str, env_var: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not found at {path} (set {env_var} to its location)"
    if os.environ.get("REQUIRE_TESTDATA") == "1":
        pytest.fail(f"REQUIRE_TESTDATA=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata (or ANIMEFACE_TESTDATA): full/, negative/, faces/, *.tsv."""
    path = Path(os.environ.get("ANIMEFACE_TESTDATA", SHARED / "testdata")).resolve()
    return _require_or_skip(path, "the shared anime test images", "ANIMEFACE_TESTDATA")


@pytest.fixture(scope="session")
def realsites() -> Path:
    """../shared/realsites (or ANIMEFACE_REALSITES): real recorded responses of getchu, Danbooru, Safebooru."""
    path = Path(os.environ.get("ANIMEFACE_REALSITES", SHARED / "realsites")).resolve()
    return _require_or_skip(path, "the recorded real-site responses", "ANIMEFACE_REALSITES")


@pytest.fixture(scope="session")
def cascade_path() -> Path:
    """The real lbpcascade_animeface.xml (ANIMEFACE_CASCADE or ../shared/models/)."""
    path = Path(os.environ.get("ANIMEFACE_CASCADE", SHARED / "models" / "lbpcascade_animeface.xml")).resolve()
    return _require_or_skip(path, "lbpcascade_animeface.xml", "ANIMEFACE_CASCADE")
