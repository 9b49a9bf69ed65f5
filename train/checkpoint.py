"""The one versioned checkpoint format: everything needed to continue a run bit for bit.

It holds G, D, EMA-G, both optimizers, the grad scaler, step/epoch, the config, the label
vocabulary and every RNG state (python, numpy, torch CPU and CUDA, and each rank's training
generator). It is written through pipeline.atomic (temp file + fsync + rename), so a kill
during a save leaves the previous checkpoint intact, and it loads with
`torch.load(weights_only=True)`: a checkpoint cannot run code when opened.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import atomic
from pipeline.errors import InputMissing, PipelineError

FORMAT = "anime-face-pipeline/dcgan"
VERSION = 1


class CheckpointError(PipelineError):
    """A checkpoint that cannot be used (damaged, another format or version); the message names the file (exit 1)."""


class CheckpointMissing(InputMissing, CheckpointError):
    """No checkpoint where one was named: the train stage has not written it yet (exit 4)."""


def rng_state() -> dict[str, Any]:
    """Global RNG states as plain Python/tensor values (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, *rest = state["python"]
    random.setstate((version, tuple(rest[0]), rest[1]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic.atomic_open(path, "wb") as fh:
        torch.save(payload, fh)


def load(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(f"no checkpoint at {path}; train one first (`make train`, then use runs/NAME/last.pt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an anime-face-pipeline DCGAN checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this trainer reads version {VERSION}")
    return payload
