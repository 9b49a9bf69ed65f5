"""Union-find clusters and the keep-best order, and the stage with a wider (256-bit) hash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from dedup.clusters import Member, build_clusters
from pipeline.layout import Layout
from tests.helpers.crops import run_dedup, variant, write_crop, write_crops_manifest
from tests.helpers.files import jsonl_rows


def test_clusters_follow_chains_and_keep_the_same_face_in_any_input_order() -> None:
    members = [
        Member("a", 100, 5.0),
        Member("b", 400, 1.0),
        Member("c", 400, 9.0),
        Member("d", 50, 50.0),
        Member("e", 10, 1.0),
    ]
    pairs = [(0, 1), (1, 2), (3, 4)]  # a-b-c chained; d-e
    expected = {(c.kept, tuple(sorted(c.members))) for c in build_clusters(members, pairs, "largest")}
    assert expected == {("c", ("a", "b", "c")), ("d", ("d", "e"))}
    rng = random.Random(1)
    for _ in range(20):
        order = list(range(len(members)))
        rng.shuffle(order)
        shuffled = [members[k] for k in order]
        where = {old: new for new, old in enumerate(order)}
        again = build_clusters(shuffled, [(where[a], where[b]) for a, b in pairs], "largest")
        assert {(c.kept, tuple(sorted(c.members))) for c in again} == expected


def test_keep_policies_and_their_explanations() -> None:
    members = [Member("x", 900, 10.0), Member("y", 400, 90.0), Member("z", 400, 90.0)]
    (largest,) = build_clusters(members, [(0, 1), (1, 2)], "largest")
    assert largest.kept == "x" and largest.why.startswith("larger source face")
    (sharpest,) = build_clusters(members, [(0, 1), (1, 2)], "sharpest")
    assert sharpest.kept == "y" and sharpest.members == ["y", "z", "x"]
    (tie,) = build_clusters(members[1:], [(0, 1)], "largest")
    assert tie.kept == "y" and "smallest crop id" in tie.why


@pytest.mark.testdata
def test_stage_with_a_256_bit_hash(tmp_path: Path, faces) -> None:
    data = tmp_path / "data"
    rows = []
    for path in faces[100:106]:
        image = Image.open(path).convert("RGB")
        rows += [
            write_crop(data, image, path.name),
            write_crop(data, variant(image, "jpeg75"), f"{path.name}/q75"),
        ]
    write_crops_manifest(data, rows)
    run_dedup(data, "[dedup]\nhash_size = 16\nthreshold = 16\n")
    manifest = jsonl_rows(Layout(data).faces_manifest)
    assert len(manifest) == 6 and all(row["cluster_size"] == 2 for row in manifest)
    assert all(row["hash_bits"] == 256 and len(row["hashes"]["phash"]) == 64 for row in manifest)
