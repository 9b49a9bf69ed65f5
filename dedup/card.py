"""The dataset card: `DATA/shards/faces64.md` + its sample grid `faces64_samples.png`, written with the shard.

A shard without a description cannot be shared or reproduced: someone receiving it needs to
know what it holds, how it was rebuilt, where every face came from and under which terms,
and what was dropped and why. The card is built only from files in DATA (the manifests, the
decision logs, the shard sidecar) plus the effective config, so it says what the files say;
its closing JSON block repeats every count in machine-readable form (the tests compare it
with the manifests). Nothing in it depends on the clock, and both files go through
`pipeline.atomic`'s write-if-changed, so a re-run with nothing new leaves them untouched.
The card is also copied into every export (`dedup.export`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import atomic, shard
from pipeline.config import read_config
from pipeline.decisions import read_dedup_decisions, read_overrides
from pipeline.errors import ConfigError
from pipeline.layout import Layout
from pipeline.manifests import CropRow, FaceRow, RawImage, read_rows

# The licence or terms note per source kind, from docs/crawler.md and the README's licensing note.
THIRD_PARTY = (
    "The images are third-party artwork owned by their artists and publishers: use this dataset "
    "for research and do not redistribute the images."
)
TERMS = {
    "getchu": "getchu.com product pages: character art of commercial games, owned by their publishers. "
    + THIRD_PARTY,
    "danbooru": "Danbooru's robots.txt disallows the JSON API this source lists (`/*.json`): crawling it "
    "takes `obey_robots = false`, which is only right once you accept Danbooru's terms of service. "
    + THIRD_PARTY,
    "safebooru": "safebooru.org posts, listed through its dapi. " + THIRD_PARTY,
    "anilist": "AniList's API terms allow non-commercial use only and forbid mass collection of its data: "
    "keep this dataset small and never use it commercially. " + THIRD_PARTY,
    "folder": "Local files you supplied: their licence is whatever you hold for them.",
    "urls": "Images from a list of URLs you supplied: each image's own terms apply. " + THIRD_PARTY,
}
UNKNOWN_TERMS = "Source of unknown kind: check the terms of the site the URLs point to. " + THIRD_PARTY
DUPLICATE_KINDS = ("exact_duplicate", "near_duplicate", "same_artwork")
VERSIONED = ("anime-face-pipeline", "opencv-python", "animeface", "Pillow", "ImageHash", "numpy")
GRID_SIDE = 8  # an 8x8 grid of faces spread evenly over the shard


@dataclasses.dataclass
class CardInputs:
    """What the card describes, from the command line that rebuilt the shard."""

    config_path: Path
    data_arg: str  # DATA as the user passed it, for the rebuild command


def versions() -> dict[str, str]:
    """The tool and the libraries whose versions change what the stages produce."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def effective_config(config_path: Path) -> dict[str, Any]:
    """Each dataset stage's settings with defaults filled in, as the stage itself reads them.

    The card describes the whole pipeline that made the shard, so it asks each stage's own
    config reader (the only place its defaults live) rather than copying them here. A
    section that no longer validates is shown as written, marked, instead of failing dedup.
    """
    from crawler import config as crawler_config
    from dedup import config as dedup_config
    from facecrop import config as facecrop_config

    table = read_config(config_path)
    out: dict[str, Any] = {}

    def why(exc: Exception) -> str:  # the file's name only, so a moved DATA or config keeps the card
        return str(exc).replace(str(config_path), config_path.name)

    try:
        settings = crawler_config.load(table)
        out["crawler"] = dataclasses.asdict(settings.crawler)
        out["sources"] = [{"kind": s.kind, **dataclasses.asdict(s)} for s in settings.sources]
    except (ConfigError, ValueError) as exc:
        out["crawler"] = {"as_written": table.get("crawler", {}), "not_valid": why(exc)}
        out["sources"] = table.get("sources", [])
    for name, load in (
        ("facecrop", lambda: dataclasses.asdict(facecrop_config.load(table))),
        ("dedup", lambda: dataclasses.asdict(dedup_config.load(table))),
    ):
        try:
            out[name] = load()
        except (ConfigError, ValueError) as exc:
            out[name] = {"as_written": table.get(name, {}), "not_valid": why(exc)}
    return out


def latest_by_id(rows: list[CropRow]) -> list[CropRow]:
    """A later manifest row for an id replaces an earlier one (how dedup reads the manifest too)."""
    return list({row.id: row for row in rows}.values())


def site_counts(raw: list[RawImage], crops: list[CropRow], faces: list[FaceRow]) -> dict[str, dict[str, Any]]:
    """Per site: images fetched (and when), images with a face, faces detected, accepted, in the shard."""
    site_of_source = {image.sha256: image.source.get("site") or "unknown" for image in raw}
    site_of_crop = {c.id: c.row.get("site") or site_of_source.get(c.source_sha256, "unknown") for c in crops}
    per_site: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "images": 0,
            "first_fetched": None,
            "last_fetched": None,
            "images_with_a_face": 0,
            "faces_detected": 0,
            "accepted": 0,
            "in_shard": 0,
        }
    )
    for image in raw:
        entry = per_site[site_of_source[image.sha256]]
        entry["images"] += 1
        fetched = image.row.get("fetched_at")
        if isinstance(fetched, str):
            entry["first_fetched"] = min(filter(None, (entry["first_fetched"], fetched)))
            entry["last_fetched"] = max(filter(None, (entry["last_fetched"], fetched)))
    with_face: dict[str, set[str]] = defaultdict(set)
    for crop in crops:
        if not crop.is_detection:
            continue
        site = site_of_crop[crop.id]
        per_site[site]["faces_detected"] += 1
        per_site[site]["accepted"] += crop.accepted
        with_face[site].add(crop.source_sha256)
    for site, shas in with_face.items():
        per_site[site]["images_with_a_face"] = len(shas)
    for face in faces:
        per_site[site_of_crop.get(face.id, site_of_source.get(face.source_sha256, "unknown"))][
            "in_shard"
        ] += 1
    return {site: dict(per_site[site]) for site in sorted(per_site)}


def statistics(layout: Layout) -> dict[str, Any]:
    """Every count the card shows, read from the manifests, the decision logs and the sidecar."""
    raw = read_rows(layout.raw_manifest, RawImage.parse)[0]
    crops = latest_by_id(read_rows(layout.crops_manifest, CropRow.parse)[0])
    faces = read_rows(layout.faces_manifest, FaceRow.parse)[0]
    dropped = atomic.read_jsonl(layout.dropped_log)
    meta = shard.read_sidecar(layout.shard_json)

    per_site = site_counts(raw, crops, faces)
    overrides = Counter(d.action for d in read_overrides(layout.data).values())
    applied = Counter(c.override for c in crops if c.override)
    dropped_by = Counter(row.get("reason") for row in dropped)
    labels = Counter(v for v in meta.get("labels", {}).get("hair_color", []) if v is not None)
    kinds = Counter(
        (c.row.get("align") or {}).get("kind", "box") for c in crops if c.accepted and c.is_detection
    )
    return {
        "shard": {
            "count": meta.get("count"),
            "shape": meta.get("shape"),
            "sha256": meta.get("sha256"),
            "created_at": meta.get("created_at"),
            "format_version": meta.get("version"),
        },
        "sources": per_site,
        "crops": {
            "detections": sum(c.is_detection for c in crops),
            "accepted": sum(c.accepted for c in crops),
            "rejected": sum(c.decision == "rejected" for c in crops),
            "rejected_by_reason": dict(
                sorted(Counter(c.reason for c in crops if c.decision == "rejected").items())
            ),
            "accepted_by_crop_kind": dict(sorted(kinds.items())),
        },
        "duplicates_removed": {kind: dropped_by.get(kind, 0) for kind in DUPLICATE_KINDS},
        "dropped_other": dict(sorted((k, v) for k, v in dropped_by.items() if k not in DUPLICATE_KINDS)),
        "overrides": {
            "logged": dict(sorted(overrides.items())),
            "applied_in_manifest": dict(sorted(applied.items())),
            "dedup_decisions": dict(
                sorted(Counter(d.action for d in read_dedup_decisions(layout.data).values()).items())
            ),
        },
        "labels": {
            "hair_color": dict(sorted(labels.items())),
            "unlabelled": meta.get("count", 0) - sum(labels.values()),
        },
    }


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("—" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render(stats: dict[str, Any], config: dict[str, Any], inputs: CardInputs, grid_name: str | None) -> str:
    """The card's Markdown: a Hub-style YAML header, then the sections docs/dedup.md lists."""
    parts = _header(stats) + _files(stats, inputs, grid_name) + _sources(stats) + _left_out(stats)
    parts += _decisions_and_labels(stats) + _provenance(stats, config)
    return "\n".join(parts)


def _size_category(count: int) -> str:
    if count < 1000:
        return "n<1K"
    if count < 10_000:
        return "1K<n<10K"
    return "10K<n<100K" if count < 100_000 else "100K<n<1M"


def _header(stats: dict[str, Any]) -> list[str]:
    s, count = stats["shard"], stats["shard"]["count"] or 0
    side = (s["shape"] or [0, 64])[1]
    return [
        "---",
        "license: other",
        "license_name: third-party-artwork-research-only",
        "task_categories:",
        "- unconditional-image-generation",
        "size_categories:",
        f"- {_size_category(count)}",
        "tags:",
        "- anime",
        "- faces",
        "---",
        "",
        f"# faces{side}: {count} anime faces, {side}×{side} RGB",
        "",
        f"Anime character faces crawled from the sources below, detected with `lbpcascade_animeface`, checked by "
        f"the `animeface` verifier and quality rules, de-duplicated (exact pixels, perceptual hash, same artwork "
        f"stored twice) and resized to {side}×{side}. Every face keeps its crop id "
        "(`<source sha256[:12]>_<x>_<y>_<w>_<h>`, with `_r<angle>` for a face found tilted), which traces it "
        "to its source image and URL through `crops/manifest.jsonl` and `raw/manifest.jsonl`.",
        "",
    ]


def _files(stats: dict[str, Any], inputs: CardInputs, grid_name: str | None) -> list[str]:
    s = stats["shard"]
    side = (s["shape"] or [0, 64])[1]
    # File names only: the card must not change when DATA is moved or the same run is started from elsewhere.
    config_name, data_name = inputs.config_path.name, Path(inputs.data_arg).name or inputs.data_arg
    parts = [
        "## Files and how it was rebuilt",
        "",
        f"- `shards/faces{side}.npy`: uint8 `{s['shape']}` RGB, sha256 `{s['sha256']}`",
        f"- `shards/faces{side}.json`: ids in row order, `hair_color` labels and their vocabulary "
        f"(shard format version {s['format_version']}, written {s['created_at']})",
        f"- `faces{side}/manifest.jsonl`: one row per face (cluster, hashes, why it was kept, colours)",
        "",
        "Rebuilt with `make dataset` (crawl → facecrop → dedup); the last step that wrote this shard was:",
        "",
        "```sh",
        f"make dataset CONFIG={config_name} DATA={data_name}   "
        f"# = crawl, facecrop, then python -m dedup --config {config_name} --data {data_name}",
        "```",
        "",
    ]
    if grid_name:
        parts += [
            f"![sample faces]({grid_name})",
            "",
            f"`{grid_name}`: {GRID_SIDE * GRID_SIDE} faces spread evenly over the shard, in row order.",
            "",
        ]
    return parts


SOURCE_COLUMNS = (
    "source",
    "images",
    "crawled from",
    "crawled until",
    "images with a face",
    "faces detected",
    "accepted",
    "in the shard",
)
SOURCE_KEYS = (
    "images",
    "first_fetched",
    "last_fetched",
    "images_with_a_face",
    "faces_detected",
    "accepted",
    "in_shard",
)


def _sources(stats: dict[str, Any]) -> list[str]:
    rows = [(site, *(e[key] for key in SOURCE_KEYS)) for site, e in stats["sources"].items()]
    parts = ["## Sources", "", _table(SOURCE_COLUMNS, rows), "", "### Licence and terms", ""]
    return parts + [f"- **{site}**: {TERMS.get(site, UNKNOWN_TERMS)}" for site in stats["sources"]]


def _left_out(stats: dict[str, Any]) -> list[str]:
    crops = stats["crops"]
    parts = [
        "",
        "## What was left out, and why",
        "",
        f"facecrop: {crops['detections']} faces detected, {crops['accepted']} accepted; rejected: "
        f"{crops['rejected']} (faces and image-level failures such as unreadable files).",
        "",
    ]
    if crops["rejected_by_reason"]:
        parts += [_table(("reject reason", "count"), list(crops["rejected_by_reason"].items())), ""]
    parts += [_table(("duplicates removed, by kind", "count"), list(stats["duplicates_removed"].items())), ""]
    if stats["dropped_other"]:
        parts += [_table(("other crops not in the shard", "count"), list(stats["dropped_other"].items())), ""]
    return parts


def _decisions_and_labels(stats: dict[str, Any]) -> list[str]:
    o, crops = stats["overrides"], stats["crops"]
    return [
        "## A person's decisions",
        "",
        f"- facecrop overrides (latest per crop): {_counts(o['logged'])}; in the crops manifest: "
        f"{_counts(o['applied_in_manifest'])}",
        f"- dedup decisions: {_counts(o['dedup_decisions'])}",
        "",
        "## Labels",
        "",
        f"`hair_color` (animeface's hair colour): {len(stats['labels']['hair_color'])} classes, "
        f"{stats['labels']['unlabelled']} faces without a label.",
        "",
        f"Crop kinds among accepted faces: {_counts(crops['accepted_by_crop_kind'])} "
        "(`aligned` = rotated and scaled on the eyes, `box` = the detection square).",
        "",
    ]


def _provenance(stats: dict[str, Any], config: dict[str, Any]) -> list[str]:
    return [
        "## Effective config",
        "",
        "```json",
        json.dumps(config, indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Versions",
        "",
        _table(("package", "version"), list(versions().items())),
        "",
        "## Counts (machine-readable)",
        "",
        "```json",
        json.dumps(stats, indent=2, sort_keys=True),
        "```",
        "",
    ]


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "none"


def sample_grid(images: np.ndarray, side: int = GRID_SIDE) -> np.ndarray | None:
    """Up to side×side faces spread evenly over the shard, 2 px apart on white; None for an empty shard."""
    n = int(images.shape[0])
    if n == 0:
        return None
    picks = np.unique(np.linspace(0, n - 1, min(n, side * side)).round().astype(int))
    size, gap = images.shape[1], 2
    cols = min(side, len(picks))
    rows = (len(picks) + cols - 1) // cols
    grid = np.full((rows * (size + gap) + gap, cols * (size + gap) + gap, 3), 255, np.uint8)
    for k, index in enumerate(picks):
        r, c = divmod(k, cols)
        y, x = gap + r * (size + gap), gap + c * (size + gap)
        grid[y : y + size, x : x + size] = images[index]
    return grid


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the sample grid as PNG")
    return png.tobytes()


def write_card(layout: Layout, inputs: CardInputs) -> Path:
    """Write the card and its grid beside the shard (each untouched when unchanged); returns the card."""
    opened = shard.open_shard(layout.data, verify=False, allow_empty=True)
    grid = sample_grid(opened.images)
    grid_name = None
    if grid is not None:
        atomic.write_bytes(layout.shard_samples, png_bytes(grid), only_if_changed=True)
        grid_name = layout.shard_samples.name
    text = render(statistics(layout), effective_config(inputs.config_path), inputs, grid_name)
    atomic.write_text(layout.shard_card, text)
    return layout.shard_card


def card_counts(card: Path) -> dict[str, Any]:
    """The machine-readable block at the end of a card (for tests and tools that compare cards)."""
    text = card.read_text(encoding="utf-8")
    block = text.rsplit("## Counts (machine-readable)", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def card_matches_shard(layout: Layout) -> bool:
    """True when the card and its grid exist and describe the shard now on disk (by its recorded sha256)."""
    try:
        recorded = card_counts(layout.shard_card)["shard"]["sha256"]
        return layout.shard_samples.is_file() and recorded == shard.read_sidecar(layout.shard_json).get(
            "sha256"
        )
    except (OSError, ValueError, KeyError, IndexError, shard.ShardError):
        return False
