"""The foundation every stage relies on: config strictness, atomic files, the cascade, the CLIs."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facecrop.cascade import CASCADE_NAME, CASCADE_SHA256, CascadeError, load_cascade, resolve_cascade
from pipeline import atomic
from pipeline.config import build, read_config
from pipeline.errors import ConfigError
from pipeline.layout import Layout
from tests.helpers.cli import run_cli

STAGES = ("crawler", "facecrop", "dedup", "train")


# ---------------------------------------------------------------- a local file server


class _Handler(http.server.BaseHTTPRequestHandler):
    payload: bytes = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve_bytes() -> Iterator:
    servers = []

    def serve(payload: bytes) -> str:
        handler = type("Handler", (_Handler,), {"payload": payload})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{CASCADE_NAME}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{CASCADE_NAME}"


# ---------------------------------------------------------------- cascade resolver


def test_shared_cascade_matches_pinned_hash(cascade_path: Path) -> None:
    assert hashlib.sha256(cascade_path.read_bytes()).hexdigest() == CASCADE_SHA256


def test_resolver_prefers_option_then_env(cascade_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANIMEFACE_CASCADE", str(cascade_path))
    assert resolve_cascade(None, tmp_path) == cascade_path
    other = tmp_path / "mine.xml"
    other.write_bytes(cascade_path.read_bytes())
    assert resolve_cascade(other, tmp_path) == other


def test_resolver_uses_verified_copy_in_data_models(cascade_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ANIMEFACE_CASCADE", raising=False)
    cached = Layout(tmp_path).cascade
    cached.parent.mkdir()
    cached.write_bytes(cascade_path.read_bytes())
    assert resolve_cascade(None, tmp_path, url=_closed_port_url()) == cached


def test_resolver_downloads_and_verifies(
    cascade_path: Path, tmp_path: Path, monkeypatch, serve_bytes
) -> None:
    monkeypatch.delenv("ANIMEFACE_CASCADE", raising=False)
    url = serve_bytes(cascade_path.read_bytes())
    path = resolve_cascade(None, tmp_path, url=url)
    assert path == Layout(tmp_path).cascade
    assert path.read_bytes() == cascade_path.read_bytes()
    assert not list(path.parent.glob(".tmp-*"))


def test_resolver_rejects_download_with_wrong_hash(tmp_path: Path, monkeypatch, serve_bytes) -> None:
    monkeypatch.delenv("ANIMEFACE_CASCADE", raising=False)
    url = serve_bytes(b"<opencv_storage>not the cascade</opencv_storage>")
    with pytest.raises(CascadeError, match="sha256") as info:
        resolve_cascade(None, tmp_path, url=url)
    assert "--cascade" in str(info.value)
    assert not Layout(tmp_path).cascade.exists()


def test_resolver_rejects_tampered_cached_copy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ANIMEFACE_CASCADE", raising=False)
    cached = Layout(tmp_path).cascade
    cached.parent.mkdir()
    cached.write_bytes(b"tampered")
    with pytest.raises(CascadeError, match="expected " + CASCADE_SHA256):
        resolve_cascade(None, tmp_path)


def test_resolver_unreachable_url_says_how_to_supply(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ANIMEFACE_CASCADE", raising=False)
    with pytest.raises(CascadeError, match="cannot download") as info:
        resolve_cascade(None, tmp_path, url=_closed_port_url(), timeout=5)
    assert "ANIMEFACE_CASCADE" in str(info.value)


def test_resolver_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(CascadeError, match="not a file"):
        resolve_cascade(tmp_path / "nope.xml", tmp_path)


def test_load_cascade_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(CascadeError, match="could not load"):
        load_cascade(bad)


# ---------------------------------------------------------------- the installed libraries really work


def _baseline_faces(testdata: Path) -> dict[str, int]:
    with (testdata / "CASCADE_BASELINE.tsv").open(newline="") as fh:
        return {row["local_file"]: int(row["n_faces"]) for row in csv.DictReader(fh, delimiter="\t")}


def test_opencv_has_cascade_api_and_finds_faces(testdata: Path, cascade_path: Path) -> None:
    import cv2

    assert int(cv2.__version__.split(".")[0]) == 4, "opencv-python 5.x has no CascadeClassifier"
    classifier = load_cascade(cascade_path)
    name, expected = next((k, v) for k, v in sorted(_baseline_faces(testdata).items()) if v >= 1)
    gray = cv2.equalizeHist(cv2.cvtColor(cv2.imread(str(testdata / name)), cv2.COLOR_BGR2GRAY))
    boxes = classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    assert len(boxes) == expected


def test_animeface_finds_faces_with_installed_pillow(testdata: Path) -> None:
    """animeface 2.0.3 silently finds nothing on Pillow >= 12; this proves the pin holds."""
    import animeface
    import PIL
    from PIL import Image

    assert int(PIL.__version__.split(".")[0]) < 12
    found = 0
    for name, n in sorted(_baseline_faces(testdata).items()):
        if n >= 1:
            found += len(animeface.detect(Image.open(testdata / name).convert("RGB")))
        if found:
            break
    assert found >= 1


# ---------------------------------------------------------------- config strictness


@dataclasses.dataclass
class _Section:
    size: int = 64
    margin: float = 0.25
    names: list[str] = dataclasses.field(default_factory=list)
    enabled: bool = True


def test_config_builds_and_coerces(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[facecrop]\nsize = 96\nmargin = 1\nnames = ["a"]\n')
    table = read_config(cfg)
    section = build(_Section, table["facecrop"], "[facecrop]")
    assert section == _Section(size=96, margin=1.0, names=["a"], enabled=True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[facecrop]\nsiez = 3\n", "unknown key"),
        ("[facecorp]\n", "unknown top-level"),
        ("[facecrop]\nsize = 'big'\n", "expected an integer"),
        ("[facecrop]\nenabled = 1\n", "expected true or false"),
        ("[facecrop\n", "not valid TOML"),
    ],
)
def test_config_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        build(_Section, read_config(cfg).get("facecrop", {}), "[facecrop]")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_config(tmp_path / "absent.toml")


def test_default_config_parses(repo_root: Path) -> None:
    read_config(repo_root / "dataset.toml")


# ---------------------------------------------------------------- atomic files


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic.atomic_open(target, "w") as fh:
        fh.write("partial")
        raise RuntimeError("killed")
    assert '"v": 1' in target.read_text()
    assert not list(tmp_path.glob(".tmp-*"))


def test_jsonl_survives_torn_append(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    atomic.append_jsonl(log, {"n": 1})
    with log.open("a") as fh:
        fh.write('{"n": 2, "tor')  # a writer killed mid-line
    atomic.append_jsonl(log, {"n": 3})
    assert atomic.read_jsonl(log) == [{"n": 1}, {"n": 3}]


# ---------------------------------------------------------------- entry points


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help(stage: str) -> None:
    result = run_cli(stage, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout and "--data" in result.stdout


def test_identical_rewrite_leaves_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "m.jsonl"
    atomic.write_jsonl(target, [{"a": 1}])
    before = target.stat().st_mtime_ns
    os.utime(target, ns=(before - 10**9, before - 10**9))
    stamped = target.stat().st_mtime_ns
    atomic.write_jsonl(target, [{"a": 1}])
    assert target.stat().st_mtime_ns == stamped
    atomic.write_jsonl(target, [{"a": 2}])
    assert target.stat().st_mtime_ns != stamped and atomic.read_jsonl(target) == [{"a": 2}]
    assert not list(tmp_path.glob(".tmp-*"))


def test_atomic_files_get_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    atomic.write_text(target, "<p>hi</p>")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
