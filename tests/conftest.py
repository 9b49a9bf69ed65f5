"""Fixtures shared by every test: the real test data and the cascade, read in place.

The shared anime images are third-party artwork that never enters the repository.
On a user's machine without them the tests that need them skip with a reason; CI
sets REQUIRE_TESTDATA=1 so that their absence fails the run instead.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pipeline.layout import CASCADE_NAME
from tests.helpers.cli import REPO
from tests.helpers.shared import SHARED, shared_path


def pytest_configure(config: pytest.Config) -> None:
    """A runner may start pytest with SIGINT ignored (a background job of a non-interactive shell).
    An ignored SIGINT is inherited by every stage a test starts, and the Ctrl-C tests could then not
    interrupt them; a handled one is reset to the default on exec, as in a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata (or ANIMEFACE_TESTDATA): full/, negative/, faces/, *.tsv."""
    return shared_path("ANIMEFACE_TESTDATA", SHARED / "testdata", "the shared anime test images")


@pytest.fixture(scope="session")
def realsites() -> Path:
    """../shared/realsites (or ANIMEFACE_REALSITES): real recorded responses of getchu, Danbooru, Safebooru."""
    return shared_path("ANIMEFACE_REALSITES", SHARED / "realsites", "the recorded real-site responses")


@pytest.fixture(scope="session")
def cascade_path() -> Path:
    """The real lbpcascade_animeface.xml (ANIMEFACE_CASCADE or ../shared/models/)."""
    return shared_path("ANIMEFACE_CASCADE", SHARED / "models" / CASCADE_NAME, CASCADE_NAME)
