"""One artwork stored twice (re-encoded or resized) gives one face, through facecrop's source hash.

The cascade boxes the same face a few pixels differently on each copy, which moves the
crops' pHash by 10-15 bits; the stage links them through their near-identical source images
instead. Real images, real facecrop and dedup runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dedup.artwork import artwork_links, iou
from pipeline.manifests import CropRow

REPO = Path(__file__).resolve().parents[2]
UNRELATED = [
    "full/style2paints_refs__1.png",
    "full/style2paints_refs__10.png",
    "full/style2paints_refs__12.png",
    "full/animegan__anime_image_misaka_mikoto.png",
]


def _store(data: Path, files: list[Path]) -> dict[str, str]:
    """A raw store and manifest shaped like the crawler's; returns file name -> sha256."""
    rows, shas = [], {}
    for f in files:
        body = f.read_bytes()
        sha = hashlib.sha256(body).hexdigest()
        rel = f"raw/{sha[:2]}/{sha[2:4]}/{sha}{f.suffix.lower()}"
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(body)
        with Image.open(f) as im:
            width, height = im.size
        rows.append(
            {
                "sha256": sha,
                "path": rel,
                "site": "folder",
                "url": f"file://{f}",
                "page_url": None,
                "fetched_at": "2026-01-01T00:00:00Z",
                "bytes": len(body),
                "width": width,
                "height": height,
                "format": "png",
                "meta": {"path": f.name},
                "provenance": [],
            }
        )
        shas[f.name] = sha
    (data / "raw" / "manifest.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in sorted(rows, key=lambda r: r["sha256"]))
    )
    return shas


def _run(stage: str, config: Path, data: Path, env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", stage, "--config", str(config), "--data", str(data)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_copies_of_one_artwork_collapse_and_different_images_do_not(
    tmp_path: Path, testdata: Path, cascade_path: Path
) -> None:
    pairs = []
    for line in (testdata / "NEARDUPS.tsv").read_text().splitlines()[1:]:
        a, b, _, note = line.split("\t")
        if "different encode/size" in note:
            pairs.append((Path(a).name, Path(b).name))
    files = sorted(
        {testdata / "full" / n for pair in pairs for n in pair} | {testdata / u for u in UNRELATED}
    )
    data = tmp_path / "data"
    shas = _store(data, files)
    config = tmp_path / "c.toml"
    config.write_text("[facecrop]\nworkers = 2\n")
    env = {**os.environ, "ANIMEFACE_CASCADE": str(cascade_path)}
    _run("facecrop", config, data, env)
    _run("dedup", config, data, env)

    accepted = [r for r in _rows(data / "crops" / "manifest.jsonl") if r["decision"] == "accepted"]
    assert all(isinstance(r["source_dhash"], str) and len(r["source_dhash"]) == 64 for r in accepted)
    kept = _rows(data / "faces64" / "manifest.jsonl")
    kept_sources = [r["source_sha256"] for r in kept]
    faced = {r["source_sha256"] for r in accepted}
    both_sides = [(a, b) for a, b in pairs if shas[a] in faced and shas[b] in faced]
    assert ("waifu2x__miku_bg.png", "waifu2x__miku_noisy.jpg") in both_sides
    for a, b in both_sides:
        assert sum(s in (shas[a], shas[b]) for s in kept_sources) == 1, (a, b)
    dropped = {r["id"]: r for r in _rows(data / "dedup" / "dropped.jsonl")}
    assert any(r["reason"] == "same_artwork" for r in dropped.values())
    # Every face of the unrelated illustrations survives.
    for name in UNRELATED:
        sha = shas[Path(name).name]
        assert sum(r["source_sha256"] == sha for r in accepted) == kept_sources.count(sha), name


def _crop(cid: str, source: str, dhash: str, box: list[int], size: list[int]) -> CropRow:
    return CropRow.parse(
        {
            "id": cid,
            "source_sha256": source,
            "decision": "accepted",
            "path": f"crops/{cid}.png",
            "box": box,
            "source_size": size,
            "source_dhash": dhash,
        }
    )


def test_links_need_near_sources_and_overlapping_boxes() -> None:
    base = "f" * 64
    near = "f" * 62 + "00"  # 8 bits away
    far = "0" * 32 + "f" * 32  # 128 bits away
    crops = [
        _crop("a", "s1", base, [100, 50, 100, 100], [400, 300]),
        _crop("b", "s2", near, [52, 27, 48, 48], [200, 150]),  # the same region at half the size
        _crop("c", "s3", far, [100, 50, 100, 100], [400, 300]),  # same box, a different picture
        _crop("d", "s2", near, [150, 10, 40, 40], [200, 150]),  # same picture, another face
    ]
    links = artwork_links(crops, threshold=24, min_iou=0.5)
    assert [(crops[x.a].id, crops[x.b].id) for x in links] == [("a", "b")]
    assert links[0].source_distance == 8 and links[0].iou > 0.8
    assert artwork_links(crops, threshold=-1, min_iou=0.5) == []
    assert iou((0, 0, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)) == 0.0
