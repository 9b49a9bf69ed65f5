"""Source images: the "no face" view (images where facecrop accepted nothing) and one image with all its boxes.

What facecrop missed is invisible in the crop views: an image with no detection has no row
in the crops manifest at all, and one whose every box was rejected shows only as scattered
rejects. So the images are counted from both manifests: every image of the raw manifest,
grouped with its crop rows, is "no face" when none of its rows is accepted now (the
manifest's decision with a person's overrides on top, as the crop views count). A promote
in the viewer takes the image out of this view at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facecrop import rules
from review.sources import Filter, picture
from review.views import CropIndex, Page, deciding, page_bounds

NO_DETECTION = "no_face"  # facecrop found no face at all
ALL_REJECTED = "rejected_boxes"  # it found boxes and rejected every one
IMAGE_REASONS = {
    NO_DETECTION: "no face found: the cascade detected nothing (or facecrop has not run on it yet)",
    ALL_REJECTED: "every box facecrop found was rejected",
    **rules.IMAGE_REASONS,
}
IMAGE_SORTS = {"boxes": "rejected boxes, most first", "id": "image sha256"}
MAX_BOXES = 500  # an image's boxes sent at once (facecrop's max_faces rejects far fewer as crowded)


def _columns(crops: CropIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accepted rows now, detection boxes, image-level rows) per source image; counted again only
    when the manifest was reloaded or the overrides log grew (the header asks on every page)."""
    key = ("image columns", crops.generation, crops.log_offset)
    if key in crops.derived:
        return crops.derived[key]
    n = len(crops.sources)
    accepted = np.bincount(crops.src[crops.state == 0], minlength=n)
    boxes = np.bincount(crops.src[crops.has_crop], minlength=n)
    image_rows = np.bincount(crops.src[~crops.has_crop], minlength=n)
    crops.derived = {key: (accepted[:n], boxes[:n], image_rows[:n])}
    return crops.derived[key]


def noface_mask(crops: CropIndex) -> np.ndarray:
    """Source images with no accepted row now."""
    accepted, _, _ = _columns(crops)
    return accepted == 0


def reason_of(crops: CropIndex, code: int, boxes: int) -> str:
    """Why an image has no face: nothing detected, an image-level failure, or every box rejected."""
    if boxes:
        return ALL_REJECTED
    for k in crops.rows_of(code):
        if not crops.has_crop[k] and crops.auto[k][1]:
            return str(crops.auto[k][1])
    return NO_DETECTION


def _sources_in(crops: CropIndex, filt: Filter, reason: str | None, sort: str, desc: bool) -> np.ndarray:
    """The no-face images that pass the filter, in the view's order."""
    accepted, boxes, image_rows = _columns(crops)
    keep = (accepted == 0) & crops.sources.matching(filt)
    if reason == NO_DETECTION:
        keep &= (boxes == 0) & (image_rows == 0)
    elif reason == ALL_REJECTED:
        keep &= boxes > 0
    elif reason:
        keep &= (boxes == 0) & (image_rows > 0)
        keep[keep] = [reason_of(crops, int(c), 0) == reason for c in np.flatnonzero(keep)]
    in_range = filt.in_range(boxes.astype(np.float64))
    if in_range is not None:
        keep &= in_range
    chosen = np.flatnonzero(keep)
    if sort == "id":
        order = np.argsort(np.array(crops.sources.shas, dtype=object)[chosen], kind="stable")
    else:
        order = np.argsort(-boxes[chosen], kind="stable")
    chosen = chosen[order]
    return chosen[::-1].copy() if desc else chosen


def image_page(
    crops: CropIndex,
    filt: Filter,
    reason: str | None,
    sort: str,
    desc: bool,
    offset: int,
    limit: int,
) -> Page:
    with crops.lock:
        chosen = _sources_in(crops, filt, reason, sort, desc)
        first, end = page_bounds(chosen.size, offset, limit)
        return Page(int(chosen.size), first, [image_card(crops, int(c)) for c in chosen[first:end]])


def image_card(crops: CropIndex, code: int, full: bool = False) -> dict[str, Any]:
    """One source image: its name and provenance, and each of its boxes (with `full`, each box's whole card)."""
    rows = crops.rows_of(code)
    sources = crops.sources
    shown = [k for k in rows if full or crops.has_crop[k]][:MAX_BOXES]
    parsed = crops.rows(shown)
    if full:
        boxes = [crops.card(k, r) for k, r in zip(shown, parsed, strict=True)]
    else:
        boxes = [_box(crops, k, r) for k, r in zip(shown, parsed, strict=True)]
    raw = sources.raw_row(crops.layout.raw_manifest, code) or {}
    origin = raw or (parsed[0] if parsed else crops.row(rows[0]) if rows else {})
    meta = origin.get("meta") if isinstance(origin.get("meta"), dict) else {}
    path = sources.path(code)
    accepted = sum(1 for k in rows if crops.state[k] == 0)
    reason = None if accepted else reason_of(crops, code, sum(1 for b in boxes if b.get("box")))
    viewable = path if reason != "decode_error" else None  # a browser cannot show it either
    return {
        "sha256": sources.shas[code],
        **picture(origin.get("site"), origin.get("url"), meta, path),
        "site": origin.get("site"),
        "url": origin.get("url"),
        "page_url": origin.get("page_url"),
        "title": meta.get("title"),
        "tags": meta.get("tags"),
        "source": f"/file/{viewable}" if viewable else None,
        "source_path": path,
        # never scaled here: an image over max_pixels is the decompression-bomb guard's business
        "thumb": f"/srcthumb/{sources.shas[code]}" if viewable and reason != "too_large" else None,
        "source_size": next((r["source_size"] for r in parsed if r.get("source_size")), None),
        "accepted": accepted,
        "reason": reason,
        "in_raw_manifest": bool(raw),
        "boxes": boxes,
        "boxes_total": len(rows),
    }


def _box(crops: CropIndex, k: int, row: dict[str, Any]) -> dict[str, Any]:
    """A box as a no-face card draws it: where it is and why it was rejected."""
    decision, reason = crops.current(k)
    values = row.get("values") if isinstance(row.get("values"), dict) else {}
    return {
        "id": crops.ids[k],
        "box": row.get("box"),
        "crop_box": row.get("crop_box"),
        "decision": decision,
        "reason": reason,
        "pending": (decision, reason) != (row.get("decision"), row.get("reason")),
        "deciding": deciding(reason, values, crops.thresholds) if decision != "accepted" else None,
    }


def find_image(crops: CropIndex, image: str) -> int | None:
    return crops.sources.find(image)


def image_summary(crops: CropIndex) -> dict[str, Any]:
    """The header's count of no-face images and the view's reasons with their meanings."""
    with crops.lock:
        accepted, boxes, _ = _columns(crops)
        none = accepted == 0
        return {
            "noface": int(none.sum()),
            "noface_with_boxes": int((none & (boxes > 0)).sum()),
            "image_reasons": IMAGE_REASONS,
            "image_sorts": IMAGE_SORTS,
            "raw_newer": _raw_newer(crops),
        }


def _raw_newer(crops: CropIndex) -> bool:
    """Whether the crawler added images after facecrop's last manifest: those are not processed yet."""
    try:
        return crops.layout.raw_manifest.stat().st_mtime > crops.layout.crops_manifest.stat().st_mtime
    except OSError:
        return False
