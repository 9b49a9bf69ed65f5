"""Finding, verifying and loading lbpcascade_animeface.xml (facecrop is its only user).

Order: explicit option, then env ANIMEFACE_CASCADE, then DATA/models/, then a download
from upstream verified against a pinned sha256. The file is small but everything
downstream depends on it being exactly the published cascade.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from pipeline import atomic
from pipeline.digest import file_digest
from pipeline.errors import PipelineError
from pipeline.layout import CASCADE_NAME, Layout

CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_URL = (
    "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
)
ENV_VAR = "ANIMEFACE_CASCADE"
HOW_TO_SUPPLY = (
    f"download {CASCADE_URL} yourself and pass --cascade PATH, set {ENV_VAR}=PATH, "
    f"or put it at DATA/models/{CASCADE_NAME}"
)


class CascadeError(PipelineError):
    """The cascade cannot be found, fetched, verified or loaded; the message says how to fix it."""


def resolve_cascade(
    option: str | Path | None,
    data_dir: str | Path,
    *,
    url: str = CASCADE_URL,
    expected_sha256: str = CASCADE_SHA256,
    timeout: float = 30.0,
) -> Path:
    """Return the path of a usable cascade file, downloading it only as a last resort.

    An explicitly named file (option or env) must exist; it is trusted as the user's
    choice. A downloaded or cached copy under DATA/models/ must match the pinned hash.
    """
    for origin, value in (("--cascade", option), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise CascadeError(f"{origin} points at {path}, which is not a file; {HOW_TO_SUPPLY}")
            return path

    cached = Layout(Path(data_dir)).cascade
    if cached.is_file():
        actual = file_digest(cached)
        if actual != expected_sha256:
            raise CascadeError(
                f"{cached} has sha256 {actual}, expected {expected_sha256}; delete it to re-download, or {HOW_TO_SUPPLY}"
            )
        return cached
    return download_cascade(cached, url=url, expected_sha256=expected_sha256, timeout=timeout)


def download_cascade(target: Path, *, url: str, expected_sha256: str, timeout: float) -> Path:
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise CascadeError(
            f"cannot download the cascade from {url} ({exc.__class__.__name__}); {HOW_TO_SUPPLY}"
        ) from exc
    actual = hashlib.sha256(response.content).hexdigest()
    if actual != expected_sha256:
        raise CascadeError(
            f"the cascade downloaded from {url} has sha256 {actual}, expected {expected_sha256}; "
            f"nothing was saved; {HOW_TO_SUPPLY}"
        )
    atomic.write_bytes(target, response.content)
    return target


def load_cascade(path: str | Path):
    """Load the classifier, failing loudly where OpenCV lacks the cascade API (opencv-python 5.x)."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise CascadeError(
            f"this OpenCV ({cv2.__version__}) has no cv2.CascadeClassifier: install opencv-python>=4.8,<5 "
            "and remove opencv-python-headless if both are installed"
        )
    try:
        classifier = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError) as exc:
        raise CascadeError(f"OpenCV could not load a cascade from {path} ({exc}); {HOW_TO_SUPPLY}") from exc
    if classifier.empty():
        raise CascadeError(f"OpenCV could not load a cascade from {path}; {HOW_TO_SUPPLY}")
    return classifier
