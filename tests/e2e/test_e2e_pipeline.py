"""End to end as a user runs it: `make dataset` against a local site, then `make train`, then `sample`.

Everything is asserted on the files the stages leave behind, the same contract a person
or a later stage reads; nothing is imported from the stages themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.layout import Layout, RunLayout
from tests.helpers.cli import run_cli
from tests.helpers.files import jsonl_rows
from tests.helpers.train import TINY

pytestmark = pytest.mark.slow

# The tests' tiny model, in batches of 4 that log, sample and checkpoint every step or two.
TRAIN = {**TINY, "batch_size": 4, "log_every": 1, "sample_every": 2, "checkpoint_every": 2}
TRAIN_TOML = "\n[train]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in TRAIN.items())


def _config(site_base: str, tmp: Path) -> Path:
    path = tmp / "e2e.toml"
    path.write_text(
        f"""
[crawler]
user_agent = "anime-face-pipeline-e2e/0.1 (+test@example.invalid)"
rate_per_host = 0
backoff = 0.05

[[sources]]
kind = "getchu"
base_url = "{site_base}"
years = [2010]
months = [1, 2]
genres = ["pc_soft"]
max_images = 50

[[sources]]
kind = "danbooru"
base_url = "{site_base}"
tags = "1girl solo"
variant_min_side = 0
max_images = 50

[facecrop]
workers = 2
"""
        + TRAIN_TOML,
        encoding="utf-8",
    )
    return path


def _make(repo_root: Path, env: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"make {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def _snapshot(data: Path) -> dict[str, tuple[int, int]]:
    """Every file under data/ with its size and mtime: a re-run that rewrites nothing leaves this unchanged."""
    return {
        str(p.relative_to(data)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(data.rglob("*"))
        if p.is_file() and ".sqlite" not in p.name  # state databases may be touched by a no-op run
    }


def test_dataset_then_train_then_sample(
    local_site, cascade_path: Path, repo_root: Path, tmp_path: Path
) -> None:
    config = _config(local_site.base, tmp_path)
    data = tmp_path / "data"
    env = {**os.environ, "ANIMEFACE_CASCADE": str(cascade_path), "PYTHONUNBUFFERED": "1"}
    make_vars = (f"CONFIG={config}", f"DATA={data}")

    first = _make(repo_root, env, "dataset", *make_vars)
    output = first.stdout + first.stderr

    # -- crawl: every valid served image once (the getchu image re-posted on danbooru is stored once)
    layout = Layout(data)
    raw = jsonl_rows(layout.raw_manifest)
    raw_shas = [row["sha256"] for row in raw]
    assert len(raw_shas) == len(set(raw_shas))
    assert set(raw_shas) == local_site.sha256s("face", "neardup", "negative")
    assert not local_site.sha256s("corrupt") & set(raw_shas)
    for row in raw:
        assert (data / row["path"]).is_file()
    duplicated = next(r for r in raw if len(r.get("provenance", [])) > 1)
    assert {p["site"] for p in duplicated["provenance"]} == {"getchu", "danbooru"}
    # getchu: through the soft.phtml -> /item/N/ redirect, past the age gate with the cookie, and
    # only this product's character art (not the related character-song CD whose alt says キャラ).
    assert {h.split("?")[0] for h in local_site.hits if h.startswith("/item/")} == {
        "/item/1001/",
        "/item/1002/",
        "/item/1003/",
    }
    assert not [h for h in local_site.hits if h.startswith("/php/attestation.html") or "990001" in h]
    assert {r["meta"]["image"] for r in raw if r["site"] == "getchu"} == {"character", "standing"}
    getchu_titles = {r["meta"].get("title") for r in raw if r["site"] == "getchu"}
    assert "春の<script>alert(1)</script>物語" in getchu_titles  # EUC-JP decoded, kept verbatim as data

    # -- facecrop: faces on the illustrations, nothing accepted from the negatives
    crops = jsonl_rows(layout.crops_manifest)
    accepted = [c for c in crops if c["decision"] == "accepted"]
    accepted_sources = {c["source_sha256"] for c in accepted}
    assert not accepted_sources & local_site.sha256s("negative")
    assert local_site.sha256s("face") <= accepted_sources
    for crop in accepted:
        assert (data / crop["path"]).is_file()

    # -- the rejects page exists and shows the manifest's counts
    page = layout.rejects_page.read_text(encoding="utf-8")
    rejected = Counter(c["reason"] for c in crops if c["decision"] == "rejected")
    embedded = re.search(r'<script type="application/json" id="facecrop-data">(.*?)</script>', page, re.S)
    assert embedded, "the rejects page carries its data as JSON"
    assert json.loads(embedded.group(1))["counts"] == dict(rejected)
    assert "<script>alert(1)</script>" not in page  # crawled titles never reach the page as markup

    # -- dedup: the near-duplicate pair collapses into one face; shard and manifest line up
    faces = jsonl_rows(layout.faces_manifest)
    neardup_faces = [f for f in faces if f["source_sha256"] in local_site.sha256s("neardup")]
    assert len(neardup_faces) == 1 and neardup_faces[0]["cluster_size"] >= 2
    shard = np.load(layout.shard_npy, mmap_mode="r")
    meta = json.loads(layout.shard_json.read_text(encoding="utf-8"))
    assert shard.shape == (len(faces), 64, 64, 3) and shard.dtype == np.uint8
    assert meta["count"] == len(faces) and sorted(meta["ids"]) == sorted(f["id"] for f in faces)
    assert layout.dedup_report.is_file()

    # -- the closing summary states the same numbers
    summary = re.search(r"faces in the shard\s+(\d+)", output)
    assert summary and int(summary.group(1)) == len(faces), output[-3000:]
    assert re.search(rf"images crawled\s+{len(raw)}\b", output)

    # -- re-running with nothing new downloads no image and rewrites nothing
    before = _snapshot(data)
    hits_before = len(local_site.hits)
    _make(repo_root, env, "dataset", *make_vars)
    image_hits = [h for h in local_site.hits[hits_before:] if h.startswith(("/brandnew/", "/data/"))]
    assert image_hits == []
    assert _snapshot(data) == before

    # -- train on that shard with no extra arguments beyond a step bound, then sample from it
    runs = tmp_path / "runs"
    _make(
        repo_root, env, "train", *make_vars, "RUN=e2e", f"ARGS=--max-steps 4 --runs-dir {runs} --device cpu"
    )
    run = RunLayout.of(runs, "e2e")
    assert run.last.is_file()
    assert list(run.samples_dir.glob("*.png"))
    grid = tmp_path / "grid.png"
    run_cli("train sample", "--ckpt", run.last, "--n", "4", "--out", grid, cwd=repo_root, env=env, check=True)
    assert grid.is_file() and grid.stat().st_size > 0
