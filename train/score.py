"""`train score`: a trained discriminator's verdict on every face of the shard.

gwern cleaned the Danbooru2019 portraits by ranking faces with a trained D: the faces it finds least
like the rest are mostly bad crops. The raw D is used (the trainer keeps an EMA of G only), in eval mode
so BatchNorm uses its running statistics and a face's score does not depend on its batch-mates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.layout import RunLayout
from pipeline.runner import show_progress
from pipeline.scores import Score, write_scores
from pipeline.summary import print_summary
from train import checkpoint
from train.models import Discriminator
from train.runtime import pick_device
from train.shard import open_shard

BATCH = 256


def load_discriminator(path: Path, device: torch.device) -> tuple[Discriminator, dict]:
    """The checkpoint's D; a checkpoint whose shape or weights do not fit is one line."""
    payload = checkpoint.load(path)
    try:
        shape = payload["model"]
        classes = len(payload["label_vocab"]) if shape.get("conditional") else 0
        d = Discriminator(shape["ndf"], shape["image_size"], classes)
        state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in payload["D"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise checkpoint.CheckpointError(
            f"{path}: its model description does not make a discriminator "
            f"({exc.__class__.__name__}: {exc}); it is not this trainer's"
        ) from exc
    checkpoint.load_state(path, "D", d, state)
    return d.to(device).eval(), payload


@torch.no_grad()
def scores(d: Discriminator, images: np.ndarray, device: torch.device, progress: bool) -> np.ndarray:
    """D's logit for each uint8 NHWC image, in the trainer's input range ([-1, 1], NCHW)."""
    out = []
    for start in tqdm(range(0, images.shape[0], BATCH), desc="score", unit="batch", disable=not progress):
        batch = torch.from_numpy(np.array(images[start : start + BATCH])).to(device)
        x = batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        out.append(d(x)[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def score_command(args: argparse.Namespace) -> int:
    """`python -m train score --ckpt runs/NAME/best.pt`: scores.jsonl, then the one-screen summary."""
    counts = score_run(args.ckpt, args.data, pick_device(args.device), show_progress(args))
    print_summary("train score", counts, stream=sys.stdout)
    return 0


def score_run(ckpt: Path, data: Path, device: torch.device, progress: bool) -> dict[str, object]:
    """Score every shard face with the checkpoint's D and write scores.jsonl beside the checkpoint."""
    d, payload = load_discriminator(ckpt, device)
    shard = open_shard(data, int(payload["model"]["image_size"]))
    ids = list(shard.meta["ids"])
    values = scores(d, shard.images, device, progress)
    out = RunLayout(ckpt.parent).scores
    step = int(payload.get("step", 0))
    rows = [Score(i, round(float(v), 5), str(ckpt), "D", step) for i, v in zip(ids, values, strict=True)]
    write_scores(out, rows)
    order = np.sort(values)
    return {
        "faces scored": len(rows),
        "network": f"raw D of {ckpt} (step {step}), eval mode",
        "lowest score": round(float(order[0]), 3) if len(order) else "none",
        "median score": round(float(np.median(order)), 3) if len(order) else "none",
        "written": str(out),
    }
