"""The review app at scale: page load, one action, search, filters, the no-face view and similar faces on
a synthetic DATA of 1,000 and 100,000 crops.

The DATA is generated (PIL-drawn faces, no shared art), in the crawler's, facecrop's and dedup's row
formats: a raw manifest of crawled pictures with three faces each (16 drawn illustrations and re-posts
of them under their own sha256, hard-linked) and of folder pictures with no accepted face (all boxes
rejected, none found, one that cannot be decoded); `crops/manifest.jsonl` with 70% accepted and the rest
spread over the reject reasons (some failing a second rule, the verifier only run where facecrop runs
it); crop PNGs hard-linked from a small pool (so 100,000 files cost seconds, not gigabytes); and
`faces64/manifest.jsonl` with dedup's hashes and `dedup/dropped.jsonl`, duplicate clusters of 3-5
(about one in thirty kept faces) whose other members are exact or near copies. The same generator
makes docs/review.md's screenshots (tests/review), so they show no third-party art.

Measured, each over HTTP against the real server in this process:
- start: indexing the manifests (once per start, and again only when facecrop rewrites them);
- first load: the page, its script, the summary and the first page of rejects, as a browser asks
  (the median of 3 loads, each on a new connection);
- one action: promoting one crop (the append, the re-read of the log tail, the new card), the median of 5;
- search, a site + value-range filter, a no-face page (plain and searched), similar faces: each the
  median of 3 different questions, so no answer is cached.
The baseline is the same measurement at 1,000 crops: "Loading must not slow down as the set grows".
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from tqdm import tqdm

from bench.report import BenchResult
from dedup.fingerprint import Job, compute
from facecrop.config import Thresholds
from pipeline.layout import Layout, rel_crop, rel_raw, rel_reject

REASONS = {  # reason -> (the measured value its rule reads, a range that fails the default threshold)
    "blurry": ("sharpness", 5.0, 95.0),
    "low_color": ("saturation", 0.005, 0.045),
    "too_small": ("face_side", 24, 63),
    "clipped": ("padding", 0.16, 0.45),
    "not_verified": ("likelihood", 0.05, 0.45),
    "crowded": ("faces_in_image", 13, 40),
}
GOALS = {
    "start": "once per start",
    "first_load": "<= 50 ms",
    **dict.fromkeys(("search", "filter", "noface", "noface_search", "similar"), "<= 100 ms"),
}
ACTIONS = 5  # promotes timed, one after another
LOADS = 3  # page loads timed (the median: the machine is shared, one sample is noise)
HOSTILE_TITLE = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
HOSTILE_URL = "javascript:alert(3)"


def face_image(seed: int, side: int = 128) -> Image.Image:
    """A drawn cartoon face: background, hair, skin, two eyes; each seed a different palette and shape."""
    rng = random.Random(seed)
    colour = lambda: tuple(rng.randrange(40, 256) for _ in range(3))  # noqa: E731
    img = Image.new("RGB", (side, side), colour())
    d = ImageDraw.Draw(img)
    hair, eyes = colour(), colour()
    s = side / 128
    d.ellipse([14 * s, 8 * s, 114 * s, 118 * s], fill=hair)
    d.ellipse([28 * s, 30 * s, 100 * s, 112 * s], fill=(255, 224, 200))
    for x in (44, 72):
        d.ellipse(
            [x * s, (60 + rng.randrange(-4, 5)) * s, (x + 14) * s, (80 + rng.randrange(-4, 5)) * s], fill=eyes
        )
    d.arc([50 * s, 84 * s, 78 * s, 100 * s], 20, 160, fill=(180, 60, 60), width=max(1, int(2 * s)))
    d.rectangle([0, 0, side - 1, side - 1], outline=hair)
    return img


FACES_PER_PICTURE = 3
FACE_SIDE = 112


def source_image(seed: int) -> tuple[Image.Image, list[list[int]]]:
    """A drawn 'illustration' with three faces on it (seeds 3*seed .. 3*seed+2), and their boxes."""
    rng = random.Random(1000 + seed)
    img = Image.new("RGB", (480, 360), tuple(rng.randrange(120, 256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randrange(480), rng.randrange(360)
        d.rectangle(
            [x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 120)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    boxes = []
    for f in range(FACES_PER_PICTURE):
        box = [12 + 156 * f + rng.randrange(0, 28), rng.randrange(40, 220), FACE_SIDE, FACE_SIDE]
        img.paste(face_image(FACES_PER_PICTURE * seed + f, FACE_SIDE), (box[0], box[1]))
        boxes.append(box)
    return img, boxes


@dataclasses.dataclass
class Source:
    sha: str
    rel: str
    boxes: list[list[int]]
    raw: dict[str, Any]
    drawn: int  # which drawn illustration it is (a copy of): its faces are pool faces 3*drawn + f


def _pool(data: Path, pool: int) -> tuple[list[Path], list[Path]]:
    """`pool` drawn faces (the crops are hard links of them), and for each a near copy (a slight
    brightness change: what a near duplicate is)."""
    pool_dir = data / "pool"
    pool_dir.mkdir(parents=True)
    faces, near = [], []
    for k in range(pool):
        img = face_image(k)
        img.save(pool_dir / f"{k}.png")
        img.point(lambda v: min(255, v + 6)).save(pool_dir / f"near{k}.png")
        faces.append(pool_dir / f"{k}.png")
        near.append(pool_dir / f"near{k}.png")
    return faces, near


def _drawn(data: Path, count: int, pool_dir: Path) -> list[Source]:
    """The drawn illustrations, stored under raw/ as the crawler stores pictures."""
    drawn = []
    for k in range(count):
        img, boxes = source_image(k)
        tmp = pool_dir / f"src{k}.png"
        img.save(tmp)
        sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
        rel = rel_raw(sha, "png")
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, data / rel)
        drawn.append(Source(sha, rel, boxes, {}, k))
    return drawn


def _link_copy(data: Path, base: Source, sha: str, raw: dict[str, Any]) -> Source:
    """Another crawled copy of a drawn illustration (a hard link under its own sha256)."""
    rel = rel_raw(sha, "png")
    (data / rel).parent.mkdir(parents=True, exist_ok=True)
    os.link(data / base.rel, data / rel)
    return Source(sha, rel, base.boxes, {"sha256": sha, "path": rel, **raw}, base.drawn)


def _sources(data: Path, count: int, drawn: list[Source]) -> list[Source]:
    """`count` crawled pictures with titles: the drawn ones, then re-posts of them (the first one's
    title and URL are hostile, and so are its re-posts')."""
    out = []
    for k in range(count):
        base = drawn[k % len(drawn)]
        hostile = base.drawn == 0
        raw = {
            "site": "synthetic",
            "url": HOSTILE_URL if hostile else f"https://example.org/post/{k}",
            "page_url": f"https://example.org/page/{0 if hostile else k}",
            "meta": {
                "title": HOSTILE_TITLE if hostile else f"synthetic illustration {k}",
                "character": f"character {k}",
                "tags": ["1girl", "solo", f"tag{k % 7}"],
            },
        }
        if k < len(drawn):
            out.append(
                Source(base.sha, base.rel, base.boxes, {"sha256": base.sha, "path": base.rel, **raw}, k)
            )
        else:
            out.append(_link_copy(data, base, hashlib.sha256(f"illustration {k}".encode()).hexdigest(), raw))
    return out


def _folder_sources(data: Path, count: int, drawn: list[Source], offset: int) -> list[Source]:
    """Pictures from a local folder (no title, only a file name): copies of the drawn ones."""
    out = []
    for k in range(offset, offset + count):
        name = f"pictures/drawn_{k:05d}.png"
        raw = {
            "site": "folder",
            "url": f"file:///home/user/{name}",
            "page_url": "file:///home/user/pictures/",
            "meta": {"path": name},
        }
        sha = hashlib.sha256(f"folder picture {k}".encode()).hexdigest()
        out.append(_link_copy(data, drawn[k % len(drawn)], sha, raw))
    return out


def _values(rng: random.Random, box: list[int], reason: str | None, i: int) -> dict[str, Any]:
    """Measured values as facecrop records them: the verifier runs only when no other rule failed."""
    values: dict[str, Any] = {
        "face_side": box[2],
        "padding": 0.0,
        "faces_in_image": 1,
        "confidence": round(1 + rng.random() * 4, 3),
        "sharpness": round(100 + rng.random() * 900, 1),
        "saturation": round(0.06 + rng.random() * 0.6, 3),
        "unique_colors": rng.randrange(40, 900),
        "likelihood": round(0.5 + rng.random() * 0.5, 3),
    }
    failed = []
    if reason:
        key, low, high = REASONS[reason]
        values[key] = rng.randint(low, high) if isinstance(low, int) else round(rng.uniform(low, high), 3)
        failed = [reason]
        if reason in ("crowded", "too_small", "clipped") and i % 3 == 0:  # a second failure, shown as "also"
            values["sharpness"] = round(rng.uniform(5.0, 95.0), 1)
            failed.append("blurry")
        if reason != "not_verified":
            del values["likelihood"]
    elif i % 97 == 0:  # a confident box the "unsure" verifier policy skipped
        del values["likelihood"]
    values["failed"] = failed
    return values


def _crop_row(crop_id: str, source: Source, box: list[int], values: dict, reason: str | None) -> dict:
    decision = "rejected" if reason else "accepted"
    side = box[2] * 3 // 2
    return {
        "id": crop_id,
        "source_sha256": source.sha,
        "source_path": source.rel,
        "source_size": [480, 360],
        "box": box,
        "crop_box": [box[0] - (side - box[2]) // 2, box[1] - box[3] * 7 // 20, side, side],
        "size": side,
        "confidence": values["confidence"],
        "decision": decision,
        "reason": reason,
        "auto_decision": decision,
        "auto_reason": reason,
        "override": None,
        "values": values,
        "path": rel_reject(reason, crop_id) if reason else rel_crop(crop_id),
        "likelihood": values.get("likelihood"),
        "hair_color": None,
        "eye_colors": None,
        **{key: source.raw[key] for key in ("site", "url", "page_url", "meta")},
    }


def _image_row(source: Source) -> dict:
    """An image facecrop could not decode: one image-level row, no box, no crop."""
    return {
        **_crop_row(f"{source.sha[:12]}_image", source, [0, 0, 0, 0], {"confidence": None}, "decode_error"),
        "box": None,
        "crop_box": None,
        "size": None,
        "source_size": None,
        "path": None,
        "values": {"error": "cannot identify image file"},
    }


def make_data(data: Path, n: int, pool: int = 48, seed: int = 0) -> dict[str, Any]:
    """A synthetic DATA of `n` crops as facecrop and dedup leave it; returns a few ids the tests use.

    The crops come from crawled pictures of three faces each (drawn illustrations and re-posts of
    them). Besides those: folder pictures (no title) where facecrop accepted nothing (every 50th crop
    is a rejected box of one), folder pictures with no detection at all, and one that could not be
    decoded: the no-face view's three kinds."""
    if data.exists():
        shutil.rmtree(data)
    layout = Layout(data)
    rng = random.Random(seed)
    faces, near = _pool(data, pool)
    drawn = _drawn(data, max(1, pool // FACES_PER_PICTURE), data / "pool")
    sources = _sources(data, max(len(drawn), n // FACES_PER_PICTURE), drawn)
    rejected_only = _folder_sources(data, max(3, n // 400), drawn, 0)
    no_detection = _folder_sources(data, max(4, n // 20), drawn, len(rejected_only))
    broken = _folder_sources(data, max(1, n // 5000), drawn, len(rejected_only) + len(no_detection))
    for source in broken:
        (data / source.rel).unlink()
        (data / source.rel).write_bytes(b"not an image")
    crop_rows, pool_of = [], {}
    made_dirs: set[Path] = set()
    for i in tqdm(range(n), desc="review bench: crops", unit="crop", file=sys.stderr, disable=n < 10_000):
        row, face = _crop(i, rng, sources, rejected_only)
        target = data / row["path"]
        if target.parent not in made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(target.parent)
        os.link(faces[face % len(faces)], target)
        pool_of[row["id"]] = face % len(faces)
        crop_rows.append(row)
    crop_rows += [_image_row(source) for source in broken]
    raw_rows = [s.raw for s in sources + rejected_only + no_detection + broken]
    layout.raw_manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.raw_manifest.write_text("".join(json.dumps(r) + "\n" for r in raw_rows))
    layout.crops_dir.mkdir(parents=True, exist_ok=True)
    with layout.crops_manifest.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in crop_rows)
    accepted = [row["id"] for row in crop_rows if row["decision"] == "accepted"]
    clusters = _dedup(data, accepted, pool_of, faces, near)
    return {
        "accepted": accepted,
        "rejected": [row["id"] for row in crop_rows if row["decision"] == "rejected" and row["crop_box"]],
        "clusters": clusters,
        "noface": [s.sha for s in rejected_only + no_detection + broken],
        "rejected_only": [s.sha for s in rejected_only],
        "broken": [s.sha for s in broken],
    }


def _crop(
    i: int, rng: random.Random, sources: list[Source], rejected_only: list[Source]
) -> tuple[dict[str, Any], int]:
    """Crop i's manifest row and the pool face it shows: a face of one picture, in turn."""
    reasons = list(REASONS)
    if i % 50 == 49:
        group, k = rejected_only, i // 50
        reason: str | None = reasons[i % len(reasons)]
    else:
        group, k = sources, i
        reason = reasons[i % len(reasons)] if rng.random() < 0.3 else None
    source = group[k % len(group)]
    f = (k // len(group)) % FACES_PER_PICTURE
    shift = k // (len(group) * FACES_PER_PICTURE)  # more crops than faces: ids stay unique
    x, y, w, h = source.boxes[f]
    box = [x + shift, y, w, h]
    crop_id = f"{source.sha[:12]}_{box[0]}_{box[1]}_{w}_{h}"
    row = _crop_row(crop_id, source, box, _values(rng, box, reason, i), reason)
    return row, FACES_PER_PICTURE * source.drawn + f


def _hashes(paths: list[Path]) -> list[dict[str, str]]:
    """dedup's own fingerprint of each pool image (its crops are hard links of them)."""
    out = []
    for path in paths:
        fp = compute(Job(path.stem, str(path), "phash", 8, 64, "area", 0))
        out.append({"phash": fp.hash_hex, "dhash": fp.dhash_hex, "pixel_sha256": fp.pixel_sha256})
    return out


def _dedup(
    data: Path, accepted: list[str], pool_of: dict[str, int], faces: list[Path], near: list[Path]
) -> list[list[str]]:
    """faces64/manifest.jsonl and dedup/dropped.jsonl: clusters of 3-5 (about one in thirty kept faces),
    their other members made exact copies or near copies of the kept face."""
    layout = Layout(data)
    pool = Pool(faces, near, _hashes(faces), _hashes(near))
    face_rows, dropped, clusters = [], [], []
    k = 0
    while k < len(accepted):
        size = 1 + (2 + (k // 10) % 3 if (k // 4) % 10 == 0 else 0)
        members = accepted[k : k + size]
        k += size
        cluster_id = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:12]
        kept = pool_of[members[0]]
        for j, member in enumerate(members[1:], 1):
            dropped.append(_duplicate(data, member, members[0], cluster_id, j, kept, pool))
        face_rows.append(
            {
                "id": members[0],
                "crop_id": members[0],
                "path": f"faces64/{members[0]}.png",
                "cluster_id": cluster_id,
                "cluster_size": len(members),
                "duplicates": members[1:],
                "kept_because": "unique" if len(members) == 1 else "larger source face (16384 vs 15876 px²)",
                "hashes": pool.face_hashes[kept],
                "hash_kind": "phash",
                "hash_bits": 64,
            }
        )
        if len(members) > 1:
            clusters.append(members)
    layout.faces_dir.mkdir(parents=True, exist_ok=True)
    with layout.faces_manifest.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in sorted(face_rows, key=lambda r: r["id"]))
    layout.dedup_dir.mkdir(parents=True, exist_ok=True)
    with layout.dropped_log.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in sorted(dropped, key=lambda r: (r["reason"], r["id"])))
    return clusters


@dataclasses.dataclass
class Pool:
    """The drawn faces crops are hard links of, their near copies, and dedup's hashes of both."""

    faces: list[Path]
    near: list[Path]
    face_hashes: list[dict[str, str]]
    near_hashes: list[dict[str, str]]


def _duplicate(data: Path, member: str, kept_id: str, cluster_id: str, j: int, kept: int, pool: Pool) -> dict:
    """One dropped member: an exact copy (odd j) or a near copy (even j) of the kept face, and its row."""
    target = data / rel_crop(member)
    target.unlink()
    row = {"id": member, "kept_id": kept_id, "cluster_id": cluster_id}
    if j % 2:
        os.link(pool.faces[kept], target)
        return {
            **row,
            "reason": "exact_duplicate",
            "distance": 0,
            "dhash_distance": 0,
            "detail": "exact duplicate",
        }
    os.link(pool.near[kept], target)
    a, b = pool.near_hashes[kept], pool.face_hashes[kept]
    d = bin(int(a["phash"], 16) ^ int(b["phash"], 16)).count("1")
    d2 = bin(int(a["dhash"], 16) ^ int(b["dhash"], 16)).count("1")
    detail = f"near duplicate (phash {d}, dHash {d2}, colour 0.3)"
    return {**row, "reason": "near_duplicate", "distance": d, "dhash_distance": d2, "detail": detail}


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> bytes:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (path, response.status, body[:200])
    return body


def _median(conn: http.client.HTTPConnection, paths: list[str], headers: dict[str, str]) -> float:
    """The median seconds of GETting each path once (each a different question: nothing cached helps)."""
    times = []
    for path in paths:
        t0 = time.perf_counter()
        _get(conn, path, headers)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _first_load(port: int, headers: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """The page, its script and styles, the summary and the first 100 rejects, as a new tab asks for them."""
    loads = []
    for _ in range(LOADS):  # each a new connection, as a new tab; the first pays any lazy work
        fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t0 = time.perf_counter()
        for path in ("/", "/static/app.js", "/static/app.css", "/api/summary"):
            _get(fresh, path, headers)
        page = json.loads(
            _get(fresh, "/api/crops?view=rejected&reason=blurry&sort=value&offset=0&limit=100", headers)
        )
        loads.append(time.perf_counter() - t0)
        fresh.close()
    assert page["items"], "no rejects on the first page"
    return statistics.median(loads), page


def _promotes(conn: http.client.HTTPConnection, host: str, token: str, items: list[dict]) -> float:
    """One promote at a time; the median, as one fsync can stall."""
    times = []
    for item in items[:ACTIONS]:
        t0 = time.perf_counter()
        body = json.dumps({"items": [{"id": item["id"], "action": "promote"}]})
        headers = {
            "Host": host,
            "Origin": f"http://{host}",
            "Content-Type": "application/json",
            "X-Review-Token": token,
        }
        conn.request("POST", "/api/crops", body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        times.append(time.perf_counter() - t0)
        assert response.status == 200 and answer["items"][0]["decision"] == "accepted", answer
    return statistics.median(times)


def _finding(conn: http.client.HTTPConnection, n: int, ids: dict[str, Any], headers: dict[str, str]) -> dict:
    """Search, filters, the no-face view and similar faces: each the median of 3 different questions."""
    q = [f"%22illustration+{n // k + 1}%22" for k in (5, 7, 11)]  # one re-post each: not k % 16 == 0
    kept = [c[0] for c in ids["clusters"][:3]]
    return {
        "search": _median(conn, [f"/api/crops?view=accepted&q={w}&limit=100" for w in q], headers),
        "filter": _median(
            conn,
            [
                f"/api/crops?view=accepted&site=synthetic&sort=likelihood&lo={lo}&hi=0.9&limit=100"
                for lo in (6, 7, 8)
            ],
            headers,
        ),
        "noface": _median(
            conn, [f"/api/images?sort=boxes&offset={k * 60}&limit=60" for k in range(3)], headers
        ),
        "noface_search": _median(conn, [f"/api/images?q=drawn_{k:03d}&limit=60" for k in range(3)], headers),
        "similar": _median(conn, [f"/api/similar?id={crop_id}&limit=24" for crop_id in kept], headers),
    }


def measure(data: Path, n: int) -> dict[str, float]:
    """Seconds for start (indexing), first load, one promote, a deep page, search, filters, the no-face
    view and similar faces, against the real server over HTTP."""
    from review.server import make_server, serve_in_thread

    t0 = time.perf_counter()
    ids = make_data(data, n)
    made = time.perf_counter() - t0
    started = time.perf_counter()
    server, app, _ = make_server(data, Thresholds())
    start = time.perf_counter() - started
    serve_in_thread(server)
    port = server.server_address[1]
    headers = {"Host": f"127.0.0.1:{port}"}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        first_load, page = _first_load(port, headers)
        action = _promotes(conn, headers["Host"], app.token, page["items"])
        t0 = time.perf_counter()
        _get(conn, "/api/crops?view=accepted&sort=sharpness&offset=50000&limit=100", headers)
        deep_page = time.perf_counter() - t0
        finding = _finding(conn, n, ids, headers)
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    print(
        f"review bench: {n:,} crops ({len(ids['accepted']):,} accepted, {len(ids['noface']):,} images with no "
        f"face, {len(ids['clusters']):,} clusters) made in {made:.1f} s, indexed in {start:.2f} s",
        file=sys.stderr,
    )
    return {"start": start, "first_load": first_load, "action": action, "deep_page": deep_page, **finding}


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    """`make bench`'s entry: the 100,000-crop numbers against the 1,000-crop baseline."""
    root = Path(data_dir) / "review"
    small = measure(root / "small", 1_000)
    large = measure(root / "large", 100_000)
    shutil.rmtree(root, ignore_errors=True)
    labels = {
        "start": "index at start",
        "first_load": "page load (median of 3)",
        "action": "one promote (median of 5)",
        "deep_page": "page at offset 50,000",
        "search": "search (a phrase, first use, median of 3)",
        "filter": "filter: site + value range (median of 3)",
        "noface": "no-face view, a page of 60 (median of 3)",
        "noface_search": "no-face view, searched (median of 3)",
        "similar": "similar faces, 24 nearest (median of 3)",
    }
    return [
        BenchResult(
            stage="review",
            name=f"{labels[key]}, 100,000 crops",
            ours=1000 * large[key],
            baseline=1000 * small[key],
            unit="ms",
            higher_is_better=False,
            goal=GOALS.get(key, "< 100 ms at 100x the crops"),
            note="baseline: the same at 1,000 crops" if key == "first_load" else "",
        )
        for key in labels
    ]
