"""Every path under DATA (and the training runs folder), in one place.

The stages meet only through these files, so their names are the pipeline's contract:
a stage that writes one and a stage that reads it both ask this module, and adding a
DATA file is one property here. Paths that manifests record are relative to DATA
(`rel_*` helpers, POSIX strings); everything else is an absolute `Path` under `data`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

CASCADE_NAME = "lbpcascade_animeface.xml"
SHARD_NAME = "faces64"
DEFAULT_RUNS_DIR = Path("runs")


def rel_raw(sha256: str, extension: str) -> str:
    """raw/<aa>/<bb>/<sha256>.<ext>: content-addressed, so no folder grows past a few thousand entries."""
    return f"raw/{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"


def rel_crop(crop_id: str) -> str:
    """An accepted crop, as crops/manifest.jsonl records it."""
    return f"crops/{crop_id}.png"


def rel_reject(reason: str, crop_id: str) -> str:
    """A rejected crop, in the folder of the rule (or a person's reason) that rejected it."""
    return f"rejects/{reason}/{crop_id}.png"


def rel_face(crop_id: str) -> str:
    """A kept 64x64 face, as faces64/manifest.jsonl records it."""
    return f"{SHARD_NAME}/{crop_id}.png"


@dataclasses.dataclass(frozen=True)
class Layout:
    """`Layout(data).crops_manifest` and so on: the file each stage writes or reads."""

    data: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))

    def path(self, rel: str) -> Path:
        """A manifest's DATA-relative path as a file path."""
        return self.data / rel

    def link(self, page: Path, rel: str) -> str:
        """A manifest's DATA-relative path as a relative link from a page written under DATA."""
        return Path(os.path.relpath(self.data / rel, page.parent)).as_posix()

    # ---------------------------------------------------------------- shared
    @property
    def lock(self) -> Path:
        """Held (fcntl) by the one stage run working in DATA; holds its pid (`pipeline.lock`)."""
        return self.data / ".lock"

    @property
    def models_dir(self) -> Path:
        return self.data / "models"

    @property
    def cascade(self) -> Path:
        return self.models_dir / CASCADE_NAME

    # ---------------------------------------------------------------- crawler
    @property
    def raw_dir(self) -> Path:
        return self.data / "raw"

    @property
    def raw_manifest(self) -> Path:
        return self.raw_dir / "manifest.jsonl"

    @property
    def crawl_state(self) -> Path:
        return self.data / "crawl.sqlite"

    def raw_image(self, sha256: str, extension: str) -> Path:
        return self.data / rel_raw(sha256, extension)

    # ---------------------------------------------------------------- facecrop
    @property
    def crops_dir(self) -> Path:
        return self.data / "crops"

    @property
    def rejects_dir(self) -> Path:
        return self.data / "rejects"

    @property
    def crops_manifest(self) -> Path:
        return self.crops_dir / "manifest.jsonl"

    @property
    def overrides_log(self) -> Path:
        return self.crops_dir / "overrides.jsonl"

    @property
    def facecrop_state(self) -> Path:
        return self.crops_dir / "facecrop.sqlite"

    @property
    def rejects_page(self) -> Path:
        return self.rejects_dir / "index.html"

    # ---------------------------------------------------------------- dedup
    @property
    def dedup_dir(self) -> Path:
        return self.data / "dedup"

    @property
    def dedup_state(self) -> Path:
        return self.dedup_dir / "state.sqlite"

    @property
    def thumb_cache(self) -> Path:
        return self.dedup_dir / "thumbs.u8"

    @property
    def dedup_report(self) -> Path:
        return self.dedup_dir / "report.html"

    @property
    def dropped_log(self) -> Path:
        return self.dedup_dir / "dropped.jsonl"

    @property
    def dedup_decisions_log(self) -> Path:
        """A person's duplicate decisions (written by review, read by dedup)."""
        return self.dedup_dir / "decisions.jsonl"

    @property
    def faces_dir(self) -> Path:
        return self.data / SHARD_NAME

    @property
    def faces_manifest(self) -> Path:
        return self.faces_dir / "manifest.jsonl"

    def face(self, crop_id: str) -> Path:
        return self.data / rel_face(crop_id)

    @property
    def shards_dir(self) -> Path:
        return self.data / "shards"

    @property
    def shard_npy(self) -> Path:
        return self.shards_dir / f"{SHARD_NAME}.npy"

    @property
    def shard_json(self) -> Path:
        return self.shards_dir / f"{SHARD_NAME}.json"

    @property
    def shard_card(self) -> Path:
        """The dataset card (Markdown) written with the shard and copied into every export."""
        return self.shards_dir / f"{SHARD_NAME}.md"

    @property
    def shard_samples(self) -> Path:
        """The card's sample grid (PNG), beside it."""
        return self.shards_dir / f"{SHARD_NAME}_samples.png"

    @property
    def dedup_outputs(self) -> tuple[Path, ...]:
        """Folders dedup writes into (swept for a killed run's temp files)."""
        return (self.dedup_dir, self.faces_dir, self.shards_dir)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """runs/NAME/: one training run's checkpoints, samples and metrics (outside DATA), named once here
    for the trainer, `train sample`, the benchmarks and the tests."""

    dir: Path

    @classmethod
    def of(cls, runs_dir: str | Path, name: str) -> RunLayout:
        return cls(Path(runs_dir) / name)

    @property
    def last(self) -> Path:
        """The newest checkpoint, what a re-run resumes from."""
        return self.dir / "last.pt"

    @property
    def best(self) -> Path:
        """The checkpoint with the best FID so far."""
        return self.dir / "best.pt"

    def checkpoint(self, name: str) -> Path:
        return self.dir / name

    @property
    def samples_dir(self) -> Path:
        return self.dir / "samples"

    def sample_grid(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:07d}.png"

    @property
    def real_grid(self) -> Path:
        """A grid of training images, beside the samples for comparison."""
        return self.samples_dir / "real.png"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def scores(self) -> Path:
        """`train score`'s per-face discriminator scores (`pipeline.scores`), read by the review app."""
        return self.dir / "scores.jsonl"

    @property
    def loss_curve(self) -> Path:
        return self.dir / "loss_curve.png"

    @property
    def fid_reference(self) -> Path:
        """Inception statistics of the shard's real faces, cached per shard sha256."""
        return self.dir / "fid_ref.npz"

    @property
    def tensorboard(self) -> Path:
        return self.dir / "tensorboard"
