"""One source image in, its manifest rows and crop files out; runs inside a worker process.

Each worker loads the cascade once (in `init`) and keeps OpenCV single-threaded: the
pool already uses every core, and OpenCV's own threads would only fight it for them.
The automatic decision is stored as `auto_decision`/`auto_reason` and the crop file is
written where it puts it; a person's override is applied once, when the run publishes.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import cv2

from facecrop import align, decide, detect, geometry, overrides, quality, rules, source_hash, verify
from facecrop.config import FacecropConfig
from facecrop.decode import Decoded, DecodeFailure, decode_file
from pipeline import atomic


@dataclasses.dataclass(frozen=True)
class Job:
    sha256: str
    path: str  # relative to DATA
    source: dict[str, Any]  # fields copied into every row (site, url, page_url, meta)


@dataclasses.dataclass
class Context:
    classifier: Any
    config: FacecropConfig
    data_dir: Path


_CONTEXT: Context | None = None


def init(cascade_path: str, config: FacecropConfig, data_dir: str, threads: int) -> None:
    """Pool initializer: the cascade is loaded once per worker, not once per image."""
    from facecrop.cascade import load_cascade

    global _CONTEXT
    if threads == 1:
        # A pool worker: Ctrl-C is the main process's to handle (it cancels what has not started);
        # a worker finishes its current image instead of dying with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(threads)
    _CONTEXT = Context(load_cascade(cascade_path), config, Path(data_dir))


def run_job(job: Job) -> tuple[str, list[dict[str, Any]], dict[str, float]]:
    """`process`, but an unexpected failure on one image becomes its recorded reject, not a dead run."""
    return _guarded(process, job)


def dry_job(job: Job) -> tuple[str, list[dict[str, Any]], dict[str, float]]:
    """What `run_job` decides, with no file written (`facecrop evaluate`)."""
    return _guarded(lambda ctx, j: _rows(j, *analyse(ctx, j)), job)


def _guarded(fn, job: Job) -> tuple[str, list[dict[str, Any]], dict[str, float]]:
    assert _CONTEXT is not None, "worker.init was not called"
    try:
        return fn(_CONTEXT, job)
    except OSError:
        raise  # writing a crop failed (disk full, permissions): stop the run, don't mark images done
    except Exception as exc:  # one odd file must not stop 300k others; the reason keeps the message
        return job.sha256, [image_row(job, "process_error", f"{exc.__class__.__name__}: {exc}", {})], {}


def _rows(job: Job, faces: list[tuple[dict[str, Any], Any]], clock: PhaseClock):
    return job.sha256, [row for row, _crop in faces], clock.spent


def _base_row(job: Job, crop_id: str) -> dict[str, Any]:
    return {
        "id": crop_id,
        "source_sha256": job.sha256,
        "source_path": job.path,
        **job.source,
        "source_size": None,
        "source_dhash": None,
        "box": None,
        "crop_box": None,
        "size": None,
        "confidence": None,
        "angle": None,
        "decision": "rejected",
        "reason": None,
        "values": {},
        "path": None,
        "likelihood": None,
        "hair_color": None,
        "eye_colors": None,
        "override": None,
    }


def crop_id(sha256: str, det: detect.Detection) -> str:
    """`<sha256[:12]>_<x>_<y>_<w>_<h>`, and `_r<degrees 0..359>` for a face found tilted (an upright
    face keeps the id it had before tilted faces were searched, so decisions about it still apply)."""
    base = f"{sha256[:12]}_{det.x}_{det.y}_{det.w}_{det.h}"
    return f"{base}_r{round(det.angle) % 360}" if det.angle else base


def image_row(job: Job, reason: str, message: str, values: dict[str, Any]) -> dict[str, Any]:
    row = _base_row(job, f"{job.sha256[:12]}_image")
    row.update(reason=reason, values={**values, "error": message})
    row["auto_decision"], row["auto_reason"] = "rejected", reason
    return row


PHASES = ("decode", "detect", "measure", "verify", "write")


class PhaseClock:
    """CPU seconds per phase (process time: unlike wall time, not inflated by other programs)."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PHASES, 0.0)
        self.mark = time.process_time()

    def charge(self, phase: str) -> None:
        """Add the time since the last charge to `phase`."""
        now = time.process_time()
        self.spent[phase] += now - self.mark
        self.mark = now


def process(ctx: Context, job: Job) -> tuple[str, list[dict[str, Any]], dict[str, float]]:
    """Decode the source, detect and decide its faces, and write each crop where its decision puts it."""
    faces, clock = analyse(ctx, job)
    for row, crop in faces:
        if crop is not None:
            write_crop(ctx, row, crop)
    clock.charge("write")
    return _rows(job, faces, clock)


def analyse(ctx: Context, job: Job) -> tuple[list[tuple[dict[str, Any], Any]], PhaseClock]:
    """Every detection of one source as its decided row and its crop's pixels (an image-level row: no pixels)."""
    cfg, clock = ctx.config, PhaseClock()
    try:
        decoded = decode_source(ctx, job)
    except DecodeFailure as failure:
        return [(image_row(job, failure.reason, str(failure), failure.values), None)], clock
    clock.charge("decode")
    found = detect.detect_all(ctx.classifier, detect.prepare_gray(decoded.image), cfg.search())
    clock.charge("detect")
    artwork = source_hash.source_dhash(decoded.image) if found else None
    return [face_row(ctx, job, decoded, det, len(found), artwork, clock) for det in found], clock


def decode_source(ctx: Context, job: Job) -> Decoded:
    if not job.path:
        raise DecodeFailure(
            "decode_error", "the raw manifest row has no usable path (missing, absolute or outside DATA)"
        )
    return decode_file(ctx.data_dir / job.path, ctx.config.max_pixels)


def face_row(
    ctx: Context,
    job: Job,
    decoded: Decoded,
    det: detect.Detection,
    faces_in_image: int,
    artwork: str | None,
    clock: PhaseClock,
) -> tuple[dict[str, Any], Any]:
    """One detection: cut its square, measure it, verify it if no rule rejects it, decide; the row and the crop."""
    cfg = ctx.config
    row = _base_row(job, crop_id(job.sha256, det))
    square = geometry.crop_square(det.box, decoded.width, decoded.height, cfg.margin, cfg.shift, det.angle)
    crop = geometry.cut(decoded.image, square)
    values: dict[str, Any] = {
        "face_side": max(det.w, det.h),
        "padding": square.padding_share,
        "faces_in_image": faces_in_image,
        "confidence": det.confidence,
        **quality.measure(crop, cfg.work_size),
    }
    failed = rules.failed_rules(values, cfg.thresholds)
    clock.charge("measure")
    verdict = None
    if not failed and decide.wants_verify(cfg, det.confidence):
        # Verifying a crop another rule already rejects would cost ~15 ms and change nothing.
        verdict = verify.verify_views(
            decoded.image, det.box, cfg.verify_margins(), cfg.verify_size, det.angle
        )
        values["likelihood"] = verdict.likelihood
        row.update(
            likelihood=verdict.likelihood, hair_color=verdict.hair_color, eye_colors=verdict.eye_colors
        )
        failed = rules.failed_rules(values, cfg.thresholds)
    if cfg.align == "eyes":
        crop = aligned_crop(ctx, decoded, det, square, verdict, crop, row)
    clock.charge("verify")
    row.update(
        source_size=[decoded.width, decoded.height],
        source_dhash=artwork,
        box=list(det.box),
        crop_box=square.as_box(),
        size=int(crop.shape[0]),
        confidence=det.confidence,
        angle=det.angle,
        values=values,
    )
    decide.settle(row, failed)
    return row, crop


def aligned_crop(
    ctx: Context,
    decoded: Decoded,
    det: detect.Detection,
    square: geometry.CropSquare,
    verdict: verify.Verdict | None,
    box_crop: Any,
    row: dict[str, Any],
) -> Any:
    """The eye-aligned crop, or the box crop when the eyes are missing or implausible (`row["align"]` says which).

    Every box gets eyes, whatever the rules decided: the crop's pixels then never depend on a
    decision, so a threshold change or a person's promote never needs the image again.
    Decisions stay measured on the box crop, so switching alignment changes no decision either.
    """
    cfg = ctx.config
    if verdict is None:  # a rule rejected the box, or the verifier policy skipped it: eyes only
        verdict = verify.verify_views(
            decoded.image, det.box, cfg.verify_margins(), cfg.verify_size, det.angle
        )
    outcome = align.plan(
        verdict.eyes, det.box, square.side, decoded.width, decoded.height, cfg.align_settings(), det.angle
    )
    row["align"] = outcome.record(verdict.eyes)
    return align.cut(decoded.image, outcome.plan) if outcome.plan else box_crop


def write_crop(ctx: Context, row: dict[str, Any], crop: Any) -> None:
    """The PNG goes where the rules put it; publishing moves it if a person overruled them."""
    ok, png = cv2.imencode(".png", crop)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode crop {row['id']} as PNG")
    target = overrides.crop_path(row["id"], row["auto_decision"], row["auto_reason"])
    atomic.write_bytes(ctx.data_dir / target, png.tobytes())
