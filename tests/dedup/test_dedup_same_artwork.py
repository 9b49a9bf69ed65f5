"""One artwork stored twice (re-encoded or resized) gives one face, through facecrop's source hash.

The cascade boxes the same face a few pixels differently on each copy, which moves the
crops' pHash by 10-15 bits; the stage links them through their near-identical source images
instead. Real images, real facecrop and dedup runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dedup.artwork import artwork_links, iou
from pipeline.layout import Layout, rel_crop
from pipeline.manifests import CropRow
from tests.helpers.cli import cli_env, run_cli
from tests.helpers.files import jsonl_rows
from tests.helpers.raw import add_raw, write_raw_manifest

UNRELATED = [
    "full/style2paints_refs__1.png",
    "full/style2paints_refs__10.png",
    "full/style2paints_refs__12.png",
    "full/animegan__anime_image_misaka_mikoto.png",
]


def _store(data: Path, files: list[Path]) -> dict[str, str]:
    """A raw store and manifest shaped like the crawler's (a folder source); returns file name -> sha256."""
    rows = []
    for f in files:
        with Image.open(f) as im:
            width, height = im.size
        rows.append(
            add_raw(
                data,
                f.read_bytes(),
                f.suffix.lstrip(".").lower(),
                site="folder",
                url=f"file://{f}",
                page_url=None,
                width=width,
                height=height,
                format="png",
                meta={"path": f.name},
            )
        )
    write_raw_manifest(data, sorted(rows, key=lambda r: r["sha256"]))
    return {f.name: row["sha256"] for f, row in zip(files, rows, strict=True)}


def _run(stage: str, config: Path, data: Path, cascade: Path) -> None:
    run_cli(
        stage, "--config", config, "--data", data, env=cli_env(ANIMEFACE_CASCADE=str(cascade)), check=True
    )


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
    _run("facecrop", config, data, cascade_path)
    _run("dedup", config, data, cascade_path)

    accepted = [r for r in jsonl_rows(Layout(data).crops_manifest) if r["decision"] == "accepted"]
    assert all(isinstance(r["source_dhash"], str) and len(r["source_dhash"]) == 64 for r in accepted)
    kept = jsonl_rows(Layout(data).faces_manifest)
    kept_sources = [r["source_sha256"] for r in kept]
    faced = {r["source_sha256"] for r in accepted}
    both_sides = [(a, b) for a, b in pairs if shas[a] in faced and shas[b] in faced]
    assert ("waifu2x__miku_bg.png", "waifu2x__miku_noisy.jpg") in both_sides
    for a, b in both_sides:
        assert sum(s in (shas[a], shas[b]) for s in kept_sources) == 1, (a, b)
    dropped = {r["id"]: r for r in jsonl_rows(Layout(data).dropped_log)}
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
            "path": rel_crop(cid),
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
