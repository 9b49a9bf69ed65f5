"""`facecrop evaluate`: how many of the faces people marked a run would keep, and why it loses the rest.

Detection, measuring, verifying and the rules run exactly as in a run (the same worker code, in
the same pool), but nothing is written: the images are read where they lie. A detection
matches a person's box when their IoU reaches the threshold; each person's box is matched at
most once, most confident detection first. Every detection on a negative image (one with no
anime face) is a false one. A person's box that no accepted crop matches is "lost", and the
rule that rejected the detection covering it says why (`not_detected` when none covers it).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from facecrop import rules, worker
from facecrop.config import FacecropConfig, Thresholds
from pipeline.errors import ConfigError, PipelineError

IOUS = (0.3, 0.5)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
NOT_DETECTED = "not_detected"

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class Scores:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclasses.dataclass
class Image:
    """One evaluated image: the people's boxes and facecrop's rows for it."""

    name: str
    path: Path
    truth: list[Box]
    rows: list[dict[str, Any]]
    negative: bool = False


def load_boxes(path: Path) -> dict[str, list[Box]]:
    """`{file: {"size": [w, h], "boxes": [[x, y, w, h], ...]}}` (the facebench format), checked."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--boxes: no such file {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PipelineError(f"{path}: not a readable JSON boxes file ({exc})") from None
    if not isinstance(table, dict):
        raise PipelineError(f'{path}: expected {{file: {{"boxes": [[x, y, w, h], ...]}}}}')
    out = {}
    for name, entry in table.items():
        boxes = entry.get("boxes") if isinstance(entry, dict) else None
        if not isinstance(boxes, list) or not all(_is_box(b) for b in boxes):
            raise PipelineError(f'{path}: entry {name!r} needs "boxes": [[x, y, w, h], ...] with w, h > 0')
        out[name] = [tuple(float(v) for v in b) for b in boxes]
    return out


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        and box[2] > 0
        and box[3] > 0
    )


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(detections: list[dict[str, Any]], truth: list[Box], threshold: float) -> dict[int, int]:
    """Detection index -> truth index, greedily: most confident detection first, each to its best free box."""
    order = sorted(range(len(detections)), key=lambda i: -(detections[i].get("confidence") or 0.0))
    taken: dict[int, int] = {}
    for i in order:
        best, best_iou = None, threshold
        for j, box in enumerate(truth):
            if j in taken.values():
                continue
            overlap = iou(tuple(detections[i]["box"]), box)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            taken[i] = best
    return taken


def detections(image: Image, accepted_only: bool) -> list[dict[str, Any]]:
    return [r for r in image.rows if r.get("box") and (r.get("decision") == "accepted" or not accepted_only)]


def score(images: list[Image], threshold: float, accepted_only: bool) -> Scores:
    tp = fp = fn = 0
    for image in images:
        found = detections(image, accepted_only)
        matched = match(found, image.truth, threshold)
        tp += len(matched)
        fp += len(found) - len(matched)
        fn += len(image.truth) - len(matched)
    return Scores(tp, fp, fn)


def lost_faces(images: list[Image], threshold: float) -> list[dict[str, Any]]:
    """Each person's box no accepted crop matches, with the reason of the detection that covers it best."""
    lost = []
    for image in images:
        kept = set(match(detections(image, True), image.truth, threshold).values())
        for j, box in enumerate(image.truth):
            if j in kept:
                continue
            covering = [
                (iou(tuple(r["box"]), box), r)
                for r in detections(image, False)
                if r["decision"] != "accepted"
            ]
            best = max(covering, key=lambda pair: pair[0], default=(0.0, None))
            row = best[1] if best[0] >= threshold else None
            lost.append(
                {
                    "file": image.name,
                    "box": [round(v, 1) for v in box],
                    "reason": row["reason"] if row else NOT_DETECTED,
                    "crop_id": row["id"] if row else None,
                    "values": row["values"] if row else {},
                }
            )
    return lost


def false_boxes(images: list[Image], threshold: float) -> list[tuple[Image, dict[str, Any]]]:
    """Accepted crops that match no person's box (every accepted crop on a negative image)."""
    out = []
    for image in images:
        found = detections(image, True)
        matched = match(found, image.truth, threshold)
        out.extend((image, row) for i, row in enumerate(found) if i not in matched)
    return out


def collect(
    config: FacecropConfig,
    cascade_path: Path,
    labelled: dict[str, list[Box]],
    images_dir: Path,
    negatives_dir: Path | None,
    progress: bool,
) -> list[Image]:
    """Run detection and the rules on every labelled image (and every negative), writing nothing."""
    images = [Image(name, images_dir / name, boxes, []) for name, boxes in labelled.items()]
    missing = [image.name for image in images if not image.path.is_file()]
    if missing:
        raise ConfigError(
            f"--images {images_dir}: {len(missing)} labelled file(s) missing, e.g. {missing[0]}"
        )
    if negatives_dir is not None:
        if not negatives_dir.is_dir():
            raise ConfigError(f"--negatives: no such directory {negatives_dir}")
        images += [
            Image(p.name, p, [], [], negative=True)
            for p in sorted(negatives_dir.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
    rows_by_path = _run_rows(config, cascade_path, [image.path for image in images], progress)
    for image in images:
        image.rows = rows_by_path[str(image.path.resolve())]
    return images


def _run_rows(
    config: FacecropConfig, cascade_path: Path, paths: list[Path], progress: bool
) -> dict[str, list[dict[str, Any]]]:
    """Resolved path -> its rows, from the run's own worker pool (`worker.dry_job`: nothing written)."""
    from facecrop.run import run_pooled, worker_count

    jobs = {}
    for path in paths:
        resolved = str(path.resolve())
        key = hashlib.sha256(resolved.encode()).hexdigest()
        jobs[key] = worker.Job(key, resolved, {})
    out: dict[str, list[dict[str, Any]]] = {}
    bar = tqdm(total=len(jobs), desc="facecrop evaluate", unit="img", file=sys.stderr, disable=not progress)

    def finished(result: tuple[str, list[dict[str, Any]], dict[str, float]]) -> None:
        sha, rows, _spent = result
        out[jobs[sha].path] = rows
        bar.update(1)

    # Job paths are absolute, so the workers' DATA is the file system root and reads them where they lie.
    initargs = (str(cascade_path), config, "/")
    try:
        workers = min(worker_count(config), len(jobs))
        run_pooled(list(jobs.values()), workers, initargs, finished, worker.dry_job)
    finally:
        bar.close()
    return out


def report(images: list[Image], thresholds: Thresholds) -> dict[str, Any]:
    """Every number `facecrop evaluate` prints, as one JSON-ready object."""
    lost = lost_faces(images, IOUS[0])
    for face in lost:
        if face["reason"] != NOT_DETECTED:
            face["deciding"] = list(rules.deciding_value(face["reason"], face["values"], thresholds))
    return {
        "images": sum(not i.negative for i in images),
        "negatives": sum(i.negative for i in images),
        "faces": sum(len(i.truth) for i in images),
        "scores": {
            f"{kind}@{threshold}": score(images, threshold, kind == "accepted").as_dict()
            for kind in ("accepted", "all")
            for threshold in IOUS
        },
        "accepted_on_negatives": sum(len(detections(i, True)) for i in images if i.negative),
        "angles": dict(
            collections.Counter(
                f"{r.get('angle') or 0:g}" for i in images for r in detections(i, True) if not i.negative
            )
        ),
        "lost_by_reason": dict(collections.Counter(face["reason"] for face in lost).most_common()),
        "lost": lost,
    }


def _by_angle(item: tuple[str, int]) -> float:
    return float(item[0])


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"== facecrop evaluate: {result['faces']} faces marked in {result['images']} images"
        + (f", {result['negatives']} negative images" if result["negatives"] else "")
        + " ==",
        f"  {'':<22}{'precision':>10}{'recall':>8}{'F1':>7}{'tp':>6}{'fp':>6}{'fn':>6}",
    ]
    for key, s in result["scores"].items():
        kind, threshold = key.split("@")
        label = f"{'accepted crops' if kind == 'accepted' else 'all detections'} IoU {threshold}"
        lines.append(
            f"  {label:<22}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>7.3f}"
            f"{s['tp']:>6}{s['fp']:>6}{s['fn']:>6}"
        )
    lines.append(f"  accepted crops on negative images: {result['accepted_on_negatives']}")
    found = ", ".join(f"{angle} deg: {n}" for angle, n in sorted(result["angles"].items(), key=_by_angle))
    lines.append(f"  accepted crops by the angle they were found at: {found or '-'}")
    lines.append(f"  faces lost (IoU {IOUS[0]}), by the rule that rejected them:")
    for reason, n in result["lost_by_reason"].items() or [("(none)", 0)]:
        lines.append(f"    {reason:<20}{n:>5}")
    for face in result["lost"]:
        key, value = face.get("deciding") or (None, None)
        measured = f" ({key} {value})" if key else ""
        lines.append(f"    {face['file']}  box {face['box']}  {face['reason']}{measured}")
    return "\n".join(lines)
