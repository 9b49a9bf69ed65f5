"""The one versioned checkpoint format: everything needed to continue a run bit for bit.

It holds G, D, EMA-G, both optimizers, the grad scaler, step/epoch, the config, the label
vocabulary and every RNG state (python, numpy, torch CPU and CUDA, and each rank's training
generator). `build_payload` and `restore` are the only places that map a trainer's live objects
to it and back, so the format is read and written in one module. It is serialized in memory, then written through pipeline.atomic (temp file +
fsync + rename), so a kill or a failed write (full disk, read-only folder) leaves the previous
checkpoint intact, and it loads with `torch.load(weights_only=True)`: a checkpoint cannot run
code when opened.

Bytes damaged on disk mostly still load (torch does not check the zip's CRCs), so every
checkpoint carries `sha256`, a digest of its whole content (each tensor's dtype, shape and bytes,
and every other value), which `load` recomputes. The digest lives inside the one file rather than
beside it: a sidecar would need a second rename, and a kill -9 between the two would leave a good
checkpoint that looks damaged. The file stays a plain `torch.load`-able dict.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import atomic
from pipeline.errors import ConfigError, InputMissing, PipelineError
from pipeline.layout import RunLayout
from train import distributed
from train.config import TrainConfig
from train.metrics_log import warn

log = logging.getLogger("train")

FORMAT = "anime-face-pipeline/dcgan"
VERSION = 2  # 2 added `sha256`; version 1 files still load, unverified, with a warning
READABLE_VERSIONS = (1, 2)
REQUIRED = (
    "step",
    "model",
    "label_vocab",
    "shard_sha256",
    "world",
    "G",
    "D",
    "G_ema",
    "opt_g",
    "opt_d",
    "scaler",
    "rng",
    "train_gen",
    "best_fid",
    "best_step",
    "collapse_best",
)


class CheckpointError(PipelineError):
    """A checkpoint that cannot be used (damaged, another format or version); the message names the file (exit 1)."""


class CheckpointMissing(InputMissing, CheckpointError):
    """No checkpoint where one was named: the train stage has not written it yet (exit 4)."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (full disk, read-only folder); the previous one is kept (exit 1)."""


PARTS = ("G", "D", "G_ema", "opt_g", "opt_d", "scaler")
"""The state_dicts a checkpoint holds, in the payload's order; each is restored through `load_state`."""


@dataclasses.dataclass
class RunParts:
    """The live objects a checkpoint is made from and restored into, named once by the trainer."""

    cfg: TrainConfig
    label_vocab: list[str]
    shard_sha256: str
    steps_per_epoch: int
    ctx: distributed.Dist
    gen: torch.Generator  # this rank's training generator
    states: dict[str, Any]  # each name in PARTS -> its module, optimizer or grad scaler


@dataclasses.dataclass
class Bookkeeping:
    """The counters a checkpoint carries beside weights and RNG states."""

    step: int = 0
    best_fid: float | None = None
    best_step: int | None = None
    collapse_best: float = 0.0  # best distinct-pHash share: the collapse alarm's reference


def build_payload(parts: RunParts, kept: Bookkeeping) -> dict[str, Any]:
    """What `save` writes. Every rank must call it: it gathers each rank's generator state, so a resumed
    N-process run continues every rank's stream."""
    gens = distributed.gather(parts.ctx, parts.gen.get_state().cpu())
    return {
        "step": kept.step,
        "epoch": kept.step // parts.steps_per_epoch,
        "config": dataclasses.asdict(parts.cfg),
        "model": parts.cfg.model_shape(),
        "label_vocab": parts.label_vocab,
        "shard_sha256": parts.shard_sha256,
        "world": parts.ctx.world,
        **{name: parts.states[name].state_dict() for name in PARTS},
        "rng": rng_state(),
        "train_gen": gens,
        "best_fid": kept.best_fid,
        "best_step": kept.best_step,
        "collapse_best": kept.collapse_best,
    }


def save_from_rank0(
    ctx: distributed.Dist, path: Path, payload: dict[str, Any], previous_step: int | None
) -> None:
    """Rank 0 writes; every rank then learns whether it worked, so a failed write (full disk) ends
    every rank with the same line instead of leaving the others waiting in a barrier forever."""
    failure: str | None = None
    if ctx.main:
        try:
            save(path, payload, previous_step=previous_step)
        except CheckpointWriteError as exc:
            failure = str(exc)
    failure = distributed.broadcast(ctx, failure)
    if failure is not None:
        raise CheckpointWriteError(failure)


def load_last(run_dir: Path) -> dict[str, Any] | None:
    """The run's verified last.pt, or None: a missing file is a new run, while a damaged one is an error,
    never a silent fresh start over it."""
    path = RunLayout(run_dir).last
    return load(path) if path.exists() else None


def restore(path: Path, payload: dict[str, Any], parts: RunParts) -> Bookkeeping:
    """Continue from a payload `load` verified; what does not fit is one line.

    The model shape must match the config. Learning rates and betas come from the config rather than
    the file, so a lowered LR (the advice after a non-finite loss) applies on resume.
    """
    cfg, ctx = parts.cfg, parts.ctx
    _check_model(path, payload["model"], cfg.model_shape())
    if payload["shard_sha256"] != parts.shard_sha256 and ctx.main:
        warn("the shard changed since this run's last checkpoint; training continues on the new shard")
    for name in PARTS:
        load_state(path, name, parts.states[name], payload[name])
    for name, lr in (("opt_g", cfg.lr_g), ("opt_d", cfg.lr_d)):
        for group in parts.states[name].param_groups:
            group["lr"] = lr
            group["betas"] = (cfg.beta1, cfg.beta2)
    try:
        set_rng_state(payload["rng"])
        if payload["world"] == ctx.world:
            parts.gen.set_state(payload["train_gen"][ctx.rank].to(parts.gen.get_state().device))
        elif ctx.main:
            warn(
                f"resuming a {payload['world']}-process run on {ctx.world}: per-rank RNG streams are re-seeded"
            )
        return Bookkeeping(
            int(payload["step"]), payload["best_fid"], payload["best_step"], float(payload["collapse_best"])
        )
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: its RNG or bookkeeping state does not fit this trainer ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); move it aside and re-run to start afresh"
        ) from exc


def _check_model(path: Path, stored: Any, now: dict[str, Any]) -> None:
    """A changed model shape is a config mistake (exit 2) naming both values; a shape that is no dict
    means the file is not this trainer's (exit 1)."""
    if stored == now:
        return
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path} describes no model ({stored!r}); move it aside and re-run")
    differ = [key for key in now if stored.get(key) != now[key]]
    raise ConfigError(
        f"{path} was trained with {', '.join(f'{k} = {stored.get(k)!r}' for k in differ)}, but the config "
        f"now says {', '.join(f'{k} = {now[k]!r}' for k in differ)}; restore those [train] keys or pick "
        "another --run"
    )


def digest(payload: dict[str, Any]) -> str:
    """sha256 over the payload's content, the same before `torch.save` and after `torch.load`.

    Every value is fed with its type and length, so no two different payloads feed the same bytes;
    dict keys in sorted order and tuples as lists, so the digest does not depend on how pickle
    rebuilds containers. Tensors contribute dtype, shape and raw bytes (read on the CPU).
    """
    h = hashlib.sha256()
    _feed(h, payload)
    return h.hexdigest()


def _token(h: Any, tag: bytes, data: bytes) -> None:
    h.update(tag + len(data).to_bytes(8, "little") + data)


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        _token(h, b"T", f"{t.dtype}{tuple(value.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        _token(h, b"D", str(len(value)).encode())
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, list | tuple):
        _token(h, b"L", str(len(value)).encode())
        for item in value:
            _feed(h, item)
    elif value is None or isinstance(value, bool | int | float | str | bytes):
        _token(h, b"S", f"{type(value).__name__}:{value!r}".encode())
    else:
        raise TypeError(f"checkpoint payloads hold tensors and plain values, not {type(value).__name__}")


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


def save(path: Path, payload: dict[str, Any], previous_step: int | None = None) -> None:
    """Write the checkpoint with its digest; `CheckpointWriteError` (one line) if the disk refuses it.

    The bytes are built in memory first, so the only step that touches the disk is one plain write
    into the temp file: a full disk or a read-only folder surfaces as an OSError with its errno
    (torch.save writing to a file turns it into a RuntimeError without one), the temp file is
    removed, and the previous checkpoint is never touched (`previous_step`: its step, for the message).
    """
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["sha256"] = digest(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        with atomic.atomic_open(path, "wb") as fh:
            fh.write(buffer.getbuffer())
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        why = (
            "the disk is full"
            if full
            else "the folder is not writable"
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
            else "a write error"
        )
        at = f" (step {previous_step})" if previous_step else ""
        kept = (
            f"the previous {path.name}{at} is kept and a re-run resumes from it"
            if path.exists()
            else "no earlier checkpoint exists"
        )
        raise CheckpointWriteError(
            f"cannot write {path}: {exc.strerror or exc} ({why}: free some space or make {path.parent} writable, "
            f"then re-run the same command); {kept}"
        ) from exc


def load(path: Path) -> dict[str, Any]:
    """Read and verify a checkpoint: one `CheckpointError` line naming the file and the fix, or its payload.

    Checks, in order: readable by torch, this format, a known version, the digest, every part a run
    needs. Whether the weights fit a model is checked where they are loaded (`load_state`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMissing(
            f"no checkpoint at {path}; train one first (`make train`, then use runs/NAME/last.pt)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise CheckpointError(
            f"{path} is damaged: torch cannot read it ({exc.__class__.__name__}: "
            f"{_first_line(exc)}); {_fix(path)}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an anime-face-pipeline DCGAN checkpoint; {_fix(path)}")
    version = payload.get("version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint version {version!r}; this trainer reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    recorded = payload.pop("sha256", None)
    if version >= 2:
        try:
            actual = digest(payload)
        except TypeError as exc:
            raise CheckpointError(f"{path} is damaged: {exc}; {_fix(path)}") from exc
        if recorded != actual:
            raise CheckpointError(
                f"{path} is damaged: its content does not match the sha256 recorded when it was "
                f"written (bytes changed on disk or in a copy); {_fix(path)}"
            )
    else:
        log.warning(
            "%s was written before checkpoints carried a checksum (version 1): it cannot be verified; "
            "the next save adds one",
            path,
        )
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path} lacks {', '.join(missing)}: it was not written by this trainer; {_fix(path)}"
        )
    return payload


def load_state(path: Path, part: str, target: Any, state: Any) -> None:
    """`target.load_state_dict(state)`, with a mismatch (another model width, a hand-made file) as one line.

    torch reports a wrong state_dict as a RuntimeError listing every tensor, a wrong optimizer state as
    a ValueError, a wrong type as a TypeError or KeyError; each becomes `CheckpointError` naming the
    file, the part and the first difference.
    """
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: its {part} state does not fit this model ({_first_difference(exc)}); "
            f"it was written for another model shape or is not this trainer's; "
            f"{_fix(path)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]


def _first_difference(exc: BaseException) -> str:
    """torch's load_state_dict message is a paragraph; its first specific line is enough to act on."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines[1:] if line.startswith(("size mismatch", "Missing", "Unexpected"))]
    return (specific or lines or [exc.__class__.__name__])[0][:300].rstrip(".")


def _fix(path: Path) -> str:
    """What to do about an unusable checkpoint: which other one to use, never an automatic fallback.

    Resuming silently from best.pt would throw away the steps since it and overwrite the evidence,
    so the line names the choice (and the step best.pt would resume from) and leaves it to a person.
    """
    run = RunLayout(path.parent)
    if path.name != run.last.name:
        return "use another checkpoint of the run (its last.pt), or retrain"
    best = run.best
    step = None
    if best.is_file():
        try:
            step = int(_verified_step(best))
        except Exception:  # a damaged best.pt is simply not offered; torch raises many types
            step = None
    if step is not None:
        return (
            f"to resume from {best} (step {step}) copy it over {path}; or move {path} aside to start "
            "the run afresh"
        )
    return f"move {path} aside (e.g. to {path.name}.damaged) and re-run to start the run afresh"


def _verified_step(path: Path) -> Any:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.pop("sha256", None) != digest(payload):
        raise CheckpointError(f"{path} does not verify")
    return payload["step"]
