"""The trainer against real faults (the trainer's fault cases), each through the real `python -m train` CLI.

Every fault is made for real: bytes flipped in a checkpoint on disk, a checkpoint of another model
written to the run, a file-size limit that makes the checkpoint write fail halfway (what a full disk
does), a second trainer started on a run that is training. Each must end in one `train: …` line
naming the file (or key) and the fix, with the exit code of its class, and leave the previous
checkpoint as it was. The model is the tests' tiny DCGAN, so each case runs in seconds.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.atomic import TEMP_PREFIX, read_jsonl
from pipeline.layout import RunLayout
from tests.helpers.cli import REPO, cli_env, last_line, run_cli, start_cli
from tests.helpers.processes import wait_until
from tests.helpers.train import TORCHRUN, run_train, torchrun_args, train_args, write_train_config
from train import checkpoint
from train.config import range_text
from train.shard import write_shard

BASE_STEPS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A smooth-image shard (small PNGs), a tiny config, and two 4-step runs: `base` (ngf 8), `wide` (ngf 16)."""
    root = tmp_path_factory.mktemp("reliability")
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None, :, None]
    faces = (rng.uniform(0, 255, (48, 1, 1, 3)) * ramp).astype(np.uint8)
    write_shard(root / "data", np.broadcast_to(faces, (48, 64, 64, 3)).copy())
    write_train_config(root / "c.toml", sample_every=0)
    write_train_config(root / "wide.toml", sample_every=0, ngf=16)
    for run, cfg in (("base", "c.toml"), ("wide", "wide.toml")):
        run_train(_args(root, run, str(BASE_STEPS), cfg=root / cfg), root, check=True)
    return root


def _args(
    root: Path, run: str, max_steps: str, *, cfg: Path | None = None, runs: Path | None = None
) -> list[str]:
    return train_args(
        cfg or root / "c.toml",
        root / "data",
        runs or root / "runs",
        "--max-steps",
        max_steps,
        run=run,
        progress=False,
    )


def _copy_run(trained: Path, tmp_path: Path, source: str = "base") -> Path:
    """This test's own copy of a trained run folder (tests damage it)."""
    run_dir = RunLayout.of(tmp_path / "runs", "r").dir
    shutil.copytree(RunLayout.of(trained / "runs", source).dir, run_dir)
    return run_dir


def _resume(
    trained: Path, tmp_path: Path, max_steps: int = 2 * BASE_STEPS, **kw
) -> subprocess.CompletedProcess:
    return run_train(_args(trained, "r", str(max_steps), runs=tmp_path / "runs"), tmp_path, **kw)


# ---------------------------------------------------------------- settings that pass the types
BAD_SETTINGS = [
    ("lr_g", "-1"),
    ("lr_d", "nan"),
    ("lr_d", "0"),
    ("beta1", "2"),
    ("beta2", "1.0"),
    ("fid_samples", "0"),
    ("collapse_samples", "0"),
    ("ema_decay", "1.0"),
    ("collapse_drop", "0"),
    ("seed", "-1"),
    ("batch_size", "0"),
    ("log_every", "0"),
    ("aux_weight", "-0.5"),
    ("checkpoint_every", "-1"),
    ("lr_g", "inf"),
]


@pytest.mark.parametrize(("key", "literal"), BAD_SETTINGS, ids=[f"{k}={v}" for k, v in BAD_SETTINGS])
def test_a_setting_out_of_its_range_is_one_config_line_naming_key_and_range(tmp_path, key, literal):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"[train]\n{key} = {literal}\n", encoding="utf-8")
    proc = run_train(
        train_args(cfg, tmp_path / "no-data", tmp_path / "runs", progress=False),
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    line = last_line(proc)
    assert key in line, line
    if literal not in ("nan", "inf"):  # those are refused by pipeline.config for every float, before ranges
        assert range_text(key) in line, line
    assert not (tmp_path / "runs").exists()  # refused before anything was written


# ---------------------------------------------------------------- #8: damaged bytes
def _tensor_data_span(path: Path) -> tuple[int, int]:
    """Byte range of the largest tensor record inside a torch zip checkpoint (its raw, stored data)."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with path.open("rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.file_size


def _flip(path: Path, positions: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for pos in positions:
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_tensor_data_are_refused_and_the_file_kept(trained, tmp_path):
    """The issue's case: 30 flipped bytes that torch still loads. The digest catches them; the resume
    refuses with one line naming the file and the fix, and writes nothing over the damaged file."""
    run_dir = _copy_run(trained, tmp_path)
    last = RunLayout(run_dir).last
    start, end = _tensor_data_span(last)
    _flip(last, random.Random(0).sample(range(start, end), 30))
    torch.load(last, map_location="cpu", weights_only=True)  # the damage is invisible to torch itself
    damaged = last.read_bytes()

    proc = _resume(trained, tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = last_line(proc)
    assert str(last) in line and "does not match the sha256" in line and "move" in line, line
    assert last.read_bytes() == damaged
    assert [r["step"] for r in read_jsonl(RunLayout(run_dir).metrics)][-1] == BASE_STEPS  # nothing appended

    sample = run_train(
        ["sample", "--ckpt", str(last), "--n", "8", "--out", str(tmp_path / "g.png")], tmp_path
    )
    assert sample.returncode == 1 and "does not match the sha256" in last_line(sample)
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bytes_flipped_anywhere_or_a_truncated_file_are_one_line(trained, tmp_path, seed):
    """30 bytes anywhere (zip headers, the pickle, tensor data) or a file cut short: never a traceback."""
    run_dir = _copy_run(trained, tmp_path)
    last = RunLayout(run_dir).last
    size = last.stat().st_size
    if seed == 3:
        last.write_bytes(last.read_bytes()[: size // 2])
    else:
        _flip(last, random.Random(seed).sample(range(size), 30))
    proc = _resume(trained, tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = last_line(proc)
    assert line.startswith(f"train: {last}") and "damaged" in line, line


def test_the_fix_names_a_good_best_pt_and_following_it_resumes(trained, tmp_path):
    """With a verified best.pt beside a damaged last.pt, the line offers it (and its step); nothing
    falls back on its own, and doing what the line says resumes from that step."""
    run_dir = _copy_run(trained, tmp_path)
    shutil.copy(RunLayout(run_dir).last, RunLayout(run_dir).best)  # a good checkpoint at step 4
    _resume(trained, tmp_path, check=True)  # last.pt now at step 8
    last = RunLayout(run_dir).last
    start, end = _tensor_data_span(last)
    _flip(last, random.Random(4).sample(range(start, end), 30))

    proc = _resume(trained, tmp_path, 3 * BASE_STEPS)
    assert proc.returncode == 1
    line = last_line(proc)
    assert f"{RunLayout(run_dir).best} (step {BASE_STEPS})" in line and f"copy it over {last}" in line, line

    shutil.copy(RunLayout(run_dir).best, last)
    again = _resume(trained, tmp_path, 3 * BASE_STEPS, check=True)
    assert f"resuming at step {BASE_STEPS}" in again.stderr
    assert checkpoint.load(last)["step"] == 3 * BASE_STEPS


def test_a_version_1_checkpoint_without_checksum_resumes_with_a_warning(trained, tmp_path):
    """Checkpoints written before the checksum still resume (unverified, said so); the next save adds one."""
    run_dir = _copy_run(trained, tmp_path)
    payload = torch.load(RunLayout(run_dir).last, map_location="cpu", weights_only=True)
    del payload["sha256"]
    payload["version"] = 1
    torch.save(payload, RunLayout(run_dir).last)
    proc = _resume(trained, tmp_path, check=True)
    assert "cannot be verified" in proc.stderr
    assert (
        torch.load(RunLayout(run_dir).last, map_location="cpu", weights_only=True)["version"]
        == checkpoint.VERSION
    )


# ---------------------------------------------------------------- #9: a wrong state_dict
def _wide_weights(payload: dict, wide: dict) -> None:
    payload["G"], payload["G_ema"] = wide["G"], wide["G_ema"]


def _swapped_optimizer(payload: dict, wide: dict) -> None:
    payload["opt_g"] = payload["opt_d"]


def _missing_part(payload: dict, wide: dict) -> None:
    del payload["D"]


WRONG = {
    "G weights of another width": (_wide_weights, "its G state does not fit this model (size mismatch"),
    "D's optimizer as G's": (_swapped_optimizer, "its opt_g state does not fit this model"),
    "a part missing": (_missing_part, "lacks D"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_checkpoint_whose_state_does_not_fit_is_one_line(trained, tmp_path, case):
    """Files with a valid checksum whose content is wrong for the model they describe (hand-assembled,
    or written by other code): one line naming the file, the part and the first difference."""
    edit, expected = WRONG[case]
    run_dir = _copy_run(trained, tmp_path)
    payload = checkpoint.load(RunLayout(run_dir).last)
    edit(payload, checkpoint.load(RunLayout.of(trained / "runs", "wide").last))
    checkpoint.save(
        RunLayout(run_dir).last, {k: v for k, v in payload.items() if k not in ("format", "version")}
    )

    proc = _resume(trained, tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = last_line(proc)
    assert str(RunLayout(run_dir).last) in line and expected in line and "move" in line, line
    if case != "D's optimizer as G's":  # sample reads only G_ema and the description
        sample = run_train(
            ["sample", "--ckpt", str(RunLayout(run_dir).last), "--out", str(tmp_path / "g.png")], tmp_path
        )
        assert sample.returncode == 1 and str(RunLayout(run_dir).last) in last_line(sample), sample.stderr


def test_another_widths_last_pt_copied_into_the_run_is_a_config_line(trained, tmp_path):
    """The checkpoint describes its own shape, so a copied-in run of another width says which keys differ."""
    run_dir = _copy_run(trained, tmp_path)
    shutil.copy(RunLayout.of(trained / "runs", "wide").last, RunLayout(run_dir).last)
    proc = _resume(trained, tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = last_line(proc)
    assert (
        "trained with ngf = 16, but the config now says ngf = 8;" in line and "pick another --run" in line
    ), line


# ---------------------------------------------------------------- the checkpoint write fails halfway
def _file_size_limit(limit: int):
    """A limit on the size of any file the child writes: a write past it fails with EFBIG, like a full
    disk's ENOSPC, partway through the file (SIGXFSZ ignored so the write returns the error)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_checkpoint_write_that_fails_halfway_is_one_line_and_keeps_the_previous(trained, tmp_path):
    run_dir = _copy_run(trained, tmp_path)
    last = RunLayout(run_dir).last
    before = last.read_bytes()
    others = max(p.stat().st_size for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".pt")
    limit = len(before) // 2
    assert others < limit, "the run's other files must fit under the limit for the fault to hit last.pt"

    proc = run_train(
        _args(trained, "r", "8", runs=tmp_path / "runs"), tmp_path, preexec_fn=_file_size_limit(limit)
    )
    assert proc.returncode == 1, proc.stderr
    line = last_line(proc)
    assert f"cannot write {last}" in line and "free some space" in line, line
    assert f"the previous last.pt (step {BASE_STEPS}) is kept" in line, line
    assert last.read_bytes() == before
    # the half-written temp is gone
    assert not [p for p in run_dir.iterdir() if p.name.startswith(TEMP_PREFIX)]

    again = _resume(trained, tmp_path, check=True)  # space is back: the re-run recovers
    assert f"resuming at step {BASE_STEPS}" in again.stderr
    assert checkpoint.load(last)["step"] == 2 * BASE_STEPS


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_run_folder_is_one_line(trained, tmp_path):
    run_dir = _copy_run(trained, tmp_path)
    before = RunLayout(run_dir).last.read_bytes()
    for path in (*run_dir.rglob("*"), run_dir):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        proc = _resume(trained, tmp_path)
    finally:
        for path in (run_dir, *run_dir.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert proc.returncode == 1, proc.stderr
    assert str(run_dir) in last_line(proc)
    assert RunLayout(run_dir).last.read_bytes() == before


# ---------------------------------------------------------------- two trainers on one run
def _start_logged(args: list[str], cwd: Path, err: Path) -> subprocess.Popen:
    """`python -m train ARGS` left running, its stderr in the file `err`."""
    return start_cli("train", *args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err.open("w"))


def _saved_after(path: Path, mtime: int):
    return lambda: path.exists() and path.stat().st_mtime_ns != mtime


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=120)


def test_a_second_trainer_on_one_run_exits_7_naming_the_pid_or_waits(trained, tmp_path):
    """A trains; B on the same --run exits 7 naming A's pid at once; C with --wait starts only after A
    stopped, resumes from A's checkpoint, and metrics.jsonl holds every step once."""
    run_dir = _copy_run(trained, tmp_path)
    last = RunLayout(run_dir).last
    args = _args(trained, "r", "100000", runs=tmp_path / "runs")
    a = _start_logged(args, tmp_path, tmp_path / "a.err")
    c = None
    try:
        wait_until(
            _saved_after(last, last.stat().st_mtime_ns),
            180,
            "a checkpoint from A",
            process=a,
            log=tmp_path / "a.err",
        )

        b = run_train(args, tmp_path)
        assert b.returncode == 7, b.stderr
        line = last_line(b)
        assert f"{run_dir} is in use by pid {a.pid}" in line and "--wait" in line, line

        c = _start_logged([*args, "--wait"], tmp_path, tmp_path / "c.err")
        wait_until(
            lambda: "waiting for it to finish" in (tmp_path / "c.err").read_text(),
            180,
            "C's waiting message",
            process=c,
            log=tmp_path / "c.err",
        )
        assert a.poll() is None  # C waited while A still ran
        assert _stop(a) == 130
        stopped = int(re.search(r"interrupted at step (\d+)", (tmp_path / "a.err").read_text()).group(1))
        wait_until(
            _saved_after(last, last.stat().st_mtime_ns),
            180,
            "a checkpoint from C",
            process=c,
            log=tmp_path / "c.err",
        )
        assert _stop(c) == 130
    finally:
        for proc in (a, c):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert f"resuming at step {stopped}" in (tmp_path / "c.err").read_text()
    steps = [r["step"] for r in read_jsonl(RunLayout(run_dir).metrics)]
    assert steps == sorted(set(steps)) and steps[-1] > stopped, steps


HOLD_LOCK = """
import sys
from pathlib import Path
from pipeline import lock
with lock.hold_data(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.mark.slow
def test_under_torchrun_rank_0_takes_the_run_lock_for_all_ranks(trained, tmp_path):
    """Two torchrun ranks against a run whose lock another process holds: without --wait every rank
    stops with the holder's pid (none hangs in a collective); with --wait they start once it is
    released, and resume."""
    run_dir = _copy_run(trained, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    torchrun = torchrun_args(2, _args(trained, "r", str(2 * BASE_STEPS), runs=tmp_path / "runs"))
    waiting = None
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run_cli(TORCHRUN, *torchrun, cwd=tmp_path)
        assert refused.returncode != 0
        assert f"is in use by pid {holder.pid}" in refused.stderr, refused.stderr[-3000:]
        assert checkpoint.load(RunLayout(run_dir).last)["step"] == BASE_STEPS

        err = tmp_path / "w.err"
        waiting = start_cli(
            TORCHRUN, *torchrun, "--wait", cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err.open("w")
        )
        wait_until(
            lambda: "waiting for it to finish" in err.read_text(),
            180,
            "the waiting message",
            process=waiting,
            log=err,
        )
        holder.stdin.close()  # the holder ends, the kernel releases its lock
        assert holder.wait(timeout=60) == 0
        assert waiting.wait(timeout=300) == 0, err.read_text()[-3000:]
    finally:
        for proc in (holder, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert f"resuming at step {BASE_STEPS}" in err.read_text()
    assert checkpoint.load(RunLayout(run_dir).last)["step"] == 2 * BASE_STEPS


# ---------------------------------------------------------------- sample counts
@pytest.mark.parametrize(
    ("n", "steps", "written"), [(4, 10, None), (25, 10, None), (20, 10, 20), (6, 1, None), (8, 0, 8)]
)
def test_sample_writes_exactly_n_images_or_refuses(trained, tmp_path, n, steps, written):
    """--n is the number of images, always; --interpolate STEPS splits them into n / STEPS walks."""
    out = tmp_path / "s.png"
    args = [
        "sample",
        "--ckpt",
        str(RunLayout.of(trained / "runs", "base").last),
        "--n",
        str(n),
        "--out",
        str(out),
    ]
    proc = run_train([*args, "--interpolate", str(steps)] if steps else args, tmp_path)
    if written is None:
        assert proc.returncode == 2, proc.stderr
        line = last_line(proc)
        assert "--interpolate" in line, line
        if steps > 1:
            assert f"--n {n}" in line and f"{(n // steps + 1) * steps}" in line.split("pass --n")[-1], line
        assert not out.exists()
        return
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {written} images" in proc.stderr
    cols = steps or 8
    assert Image.open(out).size == (cols * 66 + 2, -(-written // cols) * 66 + 2)


def test_config_ranges_are_the_readme_table():
    """Each range is stated once, in train/config.py, and the README's [train] table quotes it."""
    readme = (REPO / "docs" / "train.md").read_text(encoding="utf-8")
    section = readme[
        readme.index("### `[train]` keys") : readme.index("### Files", readme.index("### `[train]` keys"))
    ]
    from train.config import RANGES

    rows = [row for row in section.splitlines() if row.startswith("| `")]
    missing = [key for key in RANGES if not any(f"`{key}`" in row and range_text(key) in row for row in rows)]
    assert missing == [], json.dumps(missing)
