"""Detection accuracy against boxes people drew: facecrop vs the reference detect.py, in one run.

On ../shared/facebench/dev (284 illustrations, 380 faces; format in its README) plus the
negatives in ../shared/testdata/negative, at IoU 0.3 (a cascade's box is tighter than a drawn
head box; 0.5 in the note). Ours is `facecrop evaluate`'s own code at the default settings, for
accepted crops and for every detection. The reference is the original dataset's detect.py:
`detectMultiScale(1.1, 5, 24x24)` on the equalised grey image, every box it returns and, as
that script saved, only `faces[0]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

from bench.bench_facecrop import _cascade
from bench.report import BenchResult
from facecrop import detect
from facecrop import evaluate as measure
from facecrop.config import FacecropConfig
from facecrop.decode import decode_file

STAGE = "detect"


def reference_rows(images: list[measure.Image], cascade: Path, first_only: bool) -> list[measure.Image]:
    """The reference script's boxes as evaluated images (each box counts as accepted)."""
    classifier = cv2.CascadeClassifier(str(cascade))
    out = []
    for image in images:
        gray = detect.prepare_gray(decode_file(image.path, 1 << 40).image)
        boxes = classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        boxes = [tuple(int(v) for v in b) for b in boxes][: 1 if first_only else None]
        rows = [{"box": list(b), "decision": "accepted", "confidence": 0.0} for b in boxes]
        out.append(measure.Image(image.name, image.path, image.truth, rows, image.negative))
    return out


def _row(name: str, ours: measure.Scores, base: measure.Scores, goal: str, note: str) -> BenchResult:
    return BenchResult(STAGE, name, ours.f1, base.f1, "F1", True, goal, note)


def _pr(scores: measure.Scores) -> str:
    return f"P {scores.precision:.3f} R {scores.recall:.3f} F1 {scores.f1:.3f}"


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    facebench = testdata.parent / "facebench" / "dev"
    if not (facebench / "boxes.json").is_file():
        print(
            f"bench detect: no {facebench}/boxes.json; the accuracy rows need ../shared/facebench",
            file=sys.stderr,
        )
        return []
    cascade = _cascade(testdata)
    config = FacecropConfig()
    labelled = measure.load_boxes(facebench / "boxes.json")
    images = measure.collect(config, cascade, labelled, facebench, testdata / "negative", progress=False)
    every = reference_rows(images, cascade, first_only=False)
    first = reference_rows(images, cascade, first_only=True)
    rows = []
    for kind, accepted_only in (("accepted crops", True), ("all detections", False)):
        ours = measure.score(images, 0.3, accepted_only)
        ours_half = measure.score(images, 0.5, accepted_only)
        for label, ref in (("all boxes", every), ("faces[0]", first)):
            base = measure.score(ref, 0.3, True)
            rows.append(
                _row(
                    f"F1 @IoU0.3, {kind} vs detect.py {label}",
                    ours,
                    base,
                    "P >= 0.95, R >= 0.90, F1 >= 0.93" if accepted_only else "",
                    f"ours {_pr(ours)} (IoU 0.5: {_pr(ours_half)}); detect.py {label} {_pr(base)}",
                )
            )
    negatives = sum(len(measure.detections(i, True)) for i in images if i.negative)
    ref_negatives = sum(len(i.rows) for i in every if i.negative)
    rows.append(
        BenchResult(
            STAGE,
            "accepted crops on negative images",
            float(negatives),
            float(ref_negatives),
            "crops",
            False,
            "0",
            f"{sum(i.negative for i in images)} images without anime faces (testdata/negative); "
            f"{sum(len(i.truth) for i in images)} faces in {sum(not i.negative for i in images)} facebench images",
        )
    )
    return rows
