"""Damaged DATA: each class of data fault against a real DATA, through the real CLI.

One DATA is built once by the real stages (crawler -> facecrop -> dedup over four shared images);
each test copies it, damages the copy the way a disk, a person or a second run would, and runs a
stage on it. What must hold: no traceback, never a file outside DATA, one line naming the file
when the stage cannot go on, and otherwise a repaired DATA equal to the undamaged one.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import Locked, PipelineError
from pipeline.layout import Layout
from tests.helpers.cli import cli_env, ok, one_line, run_cli, run_stage, start_stage
from tests.helpers.files import copy_data, garble, tree_bytes
from tests.helpers.real_data import build_pipeline

pytestmark = pytest.mark.testdata

IMAGES = [
    "style2paints_refs__1.png",
    "style2paints_refs__10.png",
    "style2paints_refs__11.png",
    "style2paints_refs__12.png",
]
# State files may differ after a repair; the rejects page embeds the DATA path it was built for.
STATE_FILES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".lock", ".damaged", "thumbs.u8", "index.html")


@pytest.fixture(scope="module")
def built(tmp_path_factory, testdata: Path, cascade_path: Path) -> tuple[Path, Path]:
    data, config = build_pipeline(
        tmp_path_factory.mktemp("built"), [testdata / "full" / n for n in IMAGES], cascade_path
    )
    assert len(list(Layout(data).faces_dir.glob("*.png"))) >= 2
    return data, config


@pytest.fixture
def data(built, tmp_path: Path) -> Path:
    return copy_data(built[0], tmp_path)


@pytest.fixture
def config(built) -> Path:
    return built[1]


# ---------------------------------------------------------------- 7: a hand-edited overrides log

BAD_OVERRIDE_ROWS = {
    "escaping reason": lambda crop: {"id": crop, "action": "demote", "reason": "../../ESCAPED"},
    "absolute reason": lambda crop: {"id": crop, "action": "demote", "reason": "/tmp/ESCAPED"},
    "integer reason": lambda crop: {"id": crop, "action": "demote", "reason": 5},
    "integer id": lambda crop: {"id": 5, "action": "demote", "reason": "blurry"},
    "list row": lambda crop: [crop, "demote"],
    "unknown action": lambda crop: {"id": crop, "action": "../../x"},
    "not json": lambda crop: "{not json",
    "nested 200000 deep": lambda crop: "[" * 200_000 + "]" * 200_000,
}


@pytest.mark.parametrize("case", BAD_OVERRIDE_ROWS)
def test_a_bad_overrides_row_is_skipped_with_file_and_line(
    data: Path, config: Path, cascade_path: Path, case: str
) -> None:
    layout = Layout(data)
    crop = sorted(layout.crops_dir.glob("*.png"))[0].stem
    row = BAD_OVERRIDE_ROWS[case](crop)
    with layout.overrides_log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": crop, "action": "promote", "reason": None, "at": None}) + "\n")
        fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    outside = set(data.parent.parent.rglob("*ESCAPED*"))
    result = ok(run_stage("facecrop", data, config, cascade=cascade_path))
    assert f"{layout.overrides_log}:2: " in result.stderr, result.stderr
    assert set(data.parent.parent.rglob("*ESCAPED*")) == outside == set()
    for png in data.rglob("*.png"):
        assert png.resolve().is_relative_to(data.resolve())
    rows = [json.loads(line) for line in layout.crops_manifest.read_text().splitlines()]
    for row in rows:
        if row.get("path"):
            assert (data / row["path"]).is_file() and ".." not in row["path"]
    html = ok(run_stage("facecrop", data, config, "rejects", "--html", cascade=cascade_path))
    assert str(layout.rejects_page) in html.stdout


# ---------------------------------------------------------------- 9: damaged state files


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(max(1, size // 2) if size > 8192 else 50)


def _garble_header(path: Path) -> None:
    garble(path, offset=0, count=64)


def _garble_pages(path: Path) -> None:
    size = path.stat().st_size
    garble(path, offset=size // 2, count=min(4096, size // 4))


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so damaging the file damages the whole database."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


DAMAGE = {"truncated": _truncate, "garbled header": _garble_header, "garbled pages": _garble_pages}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_crawl_state_is_one_line_naming_it(data: Path, config: Path, damage: str) -> None:
    """crawl.sqlite alone remembers what failed and why: not rebuilt silently, named with the fix."""
    path = Layout(data).crawl_state
    _checkpoint(path)
    DAMAGE[damage](path)
    result = run_stage("crawler", data, config)
    if result.returncode == 0:  # the damage missed every page SQLite reads: then nothing may be lost either
        pytest.fail(f"a {damage} crawl.sqlite went unnoticed:\n{result.stderr}")
    assert result.returncode == PipelineError.exit_code, result.stderr
    line = one_line(result, "crawler")
    assert str(path) in line and "move it aside" in line, line
    assert Layout(data).raw_manifest.is_file()


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("which", ["facecrop", "dedup"])
def test_a_damaged_cache_state_is_rebuilt_and_said(
    data: Path, config: Path, cascade_path: Path, which: str, damage: str
) -> None:
    """facecrop.sqlite and dedup/state.sqlite only save work: rebuilt, with a warning, to the same outputs."""
    layout = Layout(data)
    path = layout.facecrop_state if which == "facecrop" else layout.dedup_state
    before = tree_bytes(data, *STATE_FILES)
    _checkpoint(path)
    DAMAGE[damage](path)
    result = ok(run_stage(which, data, config, cascade=cascade_path if which == "facecrop" else None))
    assert str(path) in result.stderr and "rebuilt" in result.stderr, result.stderr
    if which == "facecrop":
        ok(run_stage("dedup", data, config))
    assert tree_bytes(data, *STATE_FILES) == before


def test_a_garbled_facecrop_row_is_redone_naming_the_file(
    data: Path, config: Path, cascade_path: Path
) -> None:
    """The case that printed `facecrop: Expecting value: line 1 column 9` and named no file."""
    path = Layout(data).facecrop_state
    before = tree_bytes(data, *STATE_FILES)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE sources SET rows = '[{\"id\": ' || 'garbage' WHERE rowid = 1")
    db.close()
    result = ok(run_stage("facecrop", data, config, cascade=cascade_path))
    assert str(path) in result.stderr and "detected again" in result.stderr, result.stderr
    assert tree_bytes(data, *STATE_FILES) == before


ROW_DAMAGE = {
    "dedup print not UTF-8": (
        "dedup",
        "UPDATE prints SET hash_hex = CAST(x'ff99' AS TEXT) WHERE rowid = 1",
        "hashing",
    ),
    "dedup print wrong shape": (
        "dedup",
        "UPDATE prints SET dhash_hex = 'zz', width = 'x' WHERE rowid = 1",
        "hashing",
    ),
    "dedup pair wrong shape": ("dedup", "INSERT INTO pairs VALUES ('../x', 'b', 'c', 'd')", "searching"),
    "facecrop row not UTF-8": (
        "facecrop",
        "UPDATE sources SET rows = CAST(x'5b7b22ff' AS TEXT) WHERE rowid = 1",
        "detected again",
    ),
    "facecrop row unsafe reason": (
        "facecrop",
        "UPDATE sources SET rows = json_set(rows, '$[0].auto_decision', "
        "'rejected', '$[0].auto_reason', '../../ESCAPED') WHERE rowid = 1",
        "detected again",
    ),
}


@pytest.mark.parametrize("case", ROW_DAMAGE)
def test_damage_inside_a_cache_row_is_redone_not_trusted(
    data: Path, config: Path, cascade_path: Path, case: str
) -> None:
    """Damage SQLite's own check cannot see (a value garbled in place): the row is validated and redone."""
    which, sql, said = ROW_DAMAGE[case]
    layout = Layout(data)
    path = layout.facecrop_state if which == "facecrop" else layout.dedup_state
    before = tree_bytes(data, *STATE_FILES)
    db = sqlite3.connect(path)
    with db:
        db.execute(sql)
    db.close()
    result = ok(run_stage(which, data, config, cascade=cascade_path if which == "facecrop" else None))
    assert str(path) in result.stderr and said in result.stderr, result.stderr
    assert not list(data.parent.rglob("*ESCAPED*"))
    assert tree_bytes(data, *STATE_FILES) == before


def test_text_that_is_not_utf8_in_crawl_state_is_one_line_naming_it(data: Path, config: Path) -> None:
    path = Layout(data).crawl_state
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE images SET path = CAST(x'ff99' AS TEXT) WHERE rowid = 1")
    db.close()
    result = run_stage("crawler", data, config)
    assert result.returncode == PipelineError.exit_code, result.stderr
    line = one_line(result, "crawler")
    assert str(path) in line and "move it aside" in line, line


def test_a_truncated_thumbnail_cache_is_rebuilt_and_said(data: Path, config: Path) -> None:
    layout = Layout(data)
    before = tree_bytes(data, *STATE_FILES)
    with layout.thumb_cache.open("r+b") as fh:
        fh.truncate(layout.thumb_cache.stat().st_size // 3)
    result = ok(run_stage("dedup", data, config))
    assert str(layout.thumb_cache) in result.stderr and "hashed again" in result.stderr, result.stderr
    timed = (layout.shard_json, layout.shard_card)  # these two carry the time they were written
    after = tree_bytes(data, *STATE_FILES, *(p.name for p in timed))
    assert after == {
        k: v for k, v in before.items() if k not in {p.relative_to(data).as_posix() for p in timed}
    }


def test_a_garbled_thumbnail_cache_is_checked_and_its_rows_hashed_again(data: Path, config: Path) -> None:
    """Garbled in place (same size): the file is not as the last run left it, so every row is checked."""
    layout = Layout(data)
    before = tree_bytes(data, *STATE_FILES)
    layout.shard_json.unlink()  # the shard must be written again, from the cache
    garble(layout.thumb_cache, offset=100, count=200)
    result = ok(run_stage("dedup", data, config))
    assert str(layout.thumb_cache) in result.stderr and "hashed again" in result.stderr, result.stderr
    timed = (layout.shard_json, layout.shard_card)  # these two carry the time they were written
    after = tree_bytes(data, *STATE_FILES, *(p.name for p in timed))
    assert after == {
        k: v for k, v in before.items() if k not in {p.relative_to(data).as_posix() for p in timed}
    }


# ---------------------------------------------------------------- 8: silent damage to files a stage owns or reads


def test_a_garbled_faces64_png_is_repaired_on_a_plain_rerun(data: Path, config: Path) -> None:
    before = tree_bytes(data, *STATE_FILES)
    face = sorted(Layout(data).faces_dir.glob("*.png"))[0]
    garble(face)
    result = ok(run_stage("dedup", data, config))
    assert str(face) in result.stderr, result.stderr
    assert tree_bytes(data, *STATE_FILES) == before


def test_damage_that_keeps_size_and_mtime_is_found_by_verify(
    data: Path, config: Path, cascade_path: Path
) -> None:
    """A plain re-run trusts a file whose size and mtime are as recorded; --verify hashes every one."""
    layout = Layout(data)
    before = tree_bytes(data, *STATE_FILES)
    face, crop = sorted(layout.faces_dir.glob("*.png"))[0], sorted(layout.crops_dir.glob("*.png"))[0]
    for path in (face, crop):
        stat = path.stat()
        garble(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ok(run_stage("facecrop", data, config, cascade=cascade_path))
    assert crop.read_bytes() != before[crop.relative_to(data).as_posix()]  # not looked at: cheap by design
    ok(run_stage("facecrop", data, config, "--verify", cascade=cascade_path))
    ok(run_stage("dedup", data, config, "--verify"))
    assert tree_bytes(data, *STATE_FILES) == before


def test_a_garbled_crop_is_made_again(data: Path, config: Path, cascade_path: Path) -> None:
    before = tree_bytes(data, *STATE_FILES)
    crop = sorted(Layout(data).crops_dir.glob("*.png"))[0]
    garble(crop)
    result = ok(run_stage("facecrop", data, config, cascade=cascade_path))
    assert str(crop) in result.stderr, result.stderr
    assert tree_bytes(data, *STATE_FILES) == before


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_a_damaged_raw_image_is_noticed_and_its_crops_kept(
    data: Path, config: Path, cascade_path: Path, damage: str
) -> None:
    layout = Layout(data)
    before = tree_bytes(layout.crops_dir, *STATE_FILES)
    raw = sorted(p for p in layout.raw_dir.rglob("*") if p.is_file() and p != layout.raw_manifest)[0]
    raw.unlink() if damage == "deleted" else garble(raw)
    result = ok(run_stage("facecrop", data, config, cascade=cascade_path))
    assert str(raw) in result.stderr and "crawler --verify" in result.stderr, result.stderr
    assert tree_bytes(layout.crops_dir, *STATE_FILES) == before


@pytest.mark.parametrize("damage", ["deleted", "truncated", "garbled"])
def test_the_crawler_stores_a_damaged_raw_image_again(data: Path, config: Path, damage: str) -> None:
    """A plain crawl notices a missing or resized image; one garbled in place takes --verify (a hash of each)."""
    layout = Layout(data)
    before = tree_bytes(layout.raw_dir)
    raw = sorted(p for p in layout.raw_dir.rglob("*") if p.is_file() and p != layout.raw_manifest)[0]
    if damage == "deleted":
        raw.unlink()
    elif damage == "truncated":
        raw.write_bytes(raw.read_bytes()[:100])
    else:
        garble(raw)
    result = ok(run_stage("crawler", data, config, *(["--verify"] if damage == "garbled" else [])))
    assert "fetching them again" in result.stderr, result.stderr
    manifest = layout.raw_manifest.relative_to(layout.raw_dir).as_posix()
    assert tree_bytes(layout.raw_dir, layout.raw_manifest.name) == {
        k: v for k, v in before.items() if k != manifest
    }
    rows = [json.loads(line) for line in layout.raw_manifest.read_text().splitlines()]
    assert [r["sha256"] for r in rows] == [
        json.loads(line)["sha256"] for line in before[manifest].splitlines()
    ]


# ---------------------------------------------------------------- 11: two runs on one DATA


def _hold_lock(data: Path) -> int:
    """Hold DATA's lock from the test process, as another run would."""
    fd = os.open(Layout(data).lock, os.O_RDWR | os.O_CREAT)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@pytest.mark.parametrize("name", ["crawler", "facecrop", "dedup"])
def test_a_second_run_on_the_same_data_says_who_holds_it(
    data: Path, config: Path, cascade_path: Path, name: str
) -> None:
    fd = _hold_lock(data)
    try:
        result = run_stage(name, data, config, cascade=cascade_path if name == "facecrop" else None)
    finally:
        os.close(fd)
    assert result.returncode == Locked.exit_code, result.stderr
    assert f"pid {os.getpid()}" in one_line(result, name)


def test_a_second_dataset_run_says_who_holds_it_and_one_alone_runs_under_its_own_lock(
    data: Path, config: Path, cascade_path: Path
) -> None:
    args = ["--config", str(config), "--data", str(data), "--no-progress"]
    fd = _hold_lock(data)
    try:
        second = run_cli("animefaces dataset", *args)
    finally:
        os.close(fd)
    assert second.returncode == Locked.exit_code, second.stderr
    assert f"pid {os.getpid()}" in one_line(second, "animefaces")
    alone = run_cli("animefaces dataset", *args, env=cli_env(ANIMEFACE_CASCADE=str(cascade_path)))
    assert alone.returncode == 0, alone.stderr  # each stage works under the lock `dataset` holds for it


def test_wait_queues_behind_the_holder(data: Path, config: Path) -> None:
    fd = _hold_lock(data)
    process = start_stage("dedup", data, config, "--wait", stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert "waiting" in process.stderr.readline()
        assert process.poll() is None
    finally:
        os.close(fd)
    assert process.wait(timeout=120) == 0, process.stderr.read()


def test_the_stale_temp_sweep_keeps_live_writers_files(data: Path, config: Path, cascade_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # A writer killed with its stage stays a zombie where nobody reaps orphans (a container's PID 1):
    # it has ended, so its temp file is stale too. WNOWAIT waits for the exit and leaves it unreaped.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
    crops = Layout(data).crops_dir
    manifest = Layout(data).crops_manifest.name
    live_tmp = crops / f".tmp-{manifest}.{os.getpid()}.abcdefgh"
    dead_tmp = crops / f".tmp-{manifest}.{dead.pid}.abcdefgh"
    zombie_tmp = Layout(data).rejects_dir / "not_verified" / f".tmp-x.png.{zombie.pid}.abcdefgh"
    old_tmp = crops / ".tmp-x.png.abcdefgh"
    zombie_tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        for path in (live_tmp, dead_tmp, zombie_tmp, old_tmp):
            path.write_bytes(b"half a file")
        ok(run_stage("facecrop", data, config, cascade=cascade_path))
    finally:
        zombie.wait()
    assert live_tmp.exists() and not dead_tmp.exists() and not old_tmp.exists()
    assert not zombie_tmp.exists()


# ---------------------------------------------------------------- 12: a full disk, read-only DATA


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs (needs root; skipped elsewhere): a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("fault", ["full", "full, files only", "read-only"])
@pytest.mark.parametrize("name", ["crawler", "facecrop", "dedup"])
def test_a_full_or_read_only_disk_is_one_line(
    built, small_disk: Path, cascade_path: Path, name: str, fault: str
) -> None:
    data, config = copy_data(built[0], small_disk), built[1]
    layout = Layout(data)
    if fault == "full, files only":  # the state is intact; only output files are to be written
        owned = {
            "crawler": [p for p in layout.raw_dir.rglob("*.png")],
            "facecrop": [*layout.crops_dir.glob("*.png")],
            "dedup": [*layout.faces_dir.glob("*.png")],
        }[name]
    else:
        owned = {
            "crawler": [layout.crawl_state, layout.raw_manifest],
            "facecrop": [layout.facecrop_state, layout.crops_manifest],
            "dedup": [layout.dedup_state, layout.thumb_cache, layout.faces_manifest],
        }[name]
    for path in owned:
        path.unlink()  # work to redo, so the stage must write
    if fault.startswith("full"):
        fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_stage(name, data, config, cascade=cascade_path if name == "facecrop" else None)
    assert result.returncode == PipelineError.exit_code, result.stderr
    line = one_line(result, name)
    assert str(data) in line, line
    assert (
        ("full" in line)
        if fault.startswith("full")
        else ("read-only" in line.lower() or "writ" in line.lower())
    ), line
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    else:
        (small_disk / "filler").unlink()
    # Space back (or writable again): the re-run recovers, as the issue found it always did.
    ok(run_stage(name, data, config, cascade=cascade_path if name == "facecrop" else None))
