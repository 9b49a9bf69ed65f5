"""Batches indexed on the device from one uint8 tensor: no decoding, no DataLoader workers.

The whole shard (or this rank's slice of it) is 12 KiB per face as uint8, so even 300k
faces fit in device memory. The order of epoch e is a permutation seeded by (seed, rank, e),
so a resumed run draws exactly the batches a straight run would without storing the order.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.errors import ConfigError


class DeviceBatches:
    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        batch_size: int,
        device: torch.device,
        seed: int,
        rank: int = 0,
        world: int = 1,
        flip: bool = True,
        memory_format: torch.memory_format = torch.channels_last,
    ):
        rows = images[rank::world]
        if rows.shape[0] < batch_size:
            raise ConfigError(
                f"the shard has {images.shape[0]} faces ({rows.shape[0]} on this rank), fewer than batch_size "
                f"{batch_size}; lower [train] batch_size or add faces"
            )
        # NHWC uint8 on the device; a permuted view of it is already channels_last NCHW.
        self.images = torch.from_numpy(np.array(rows, copy=True)).to(device)
        self.labels = (
            None if labels is None else torch.from_numpy(np.ascontiguousarray(labels[rank::world])).to(device)
        )
        self.batch_size, self.device, self.flip = batch_size, device, flip
        self.seed, self.rank = seed, rank
        self.memory_format = memory_format
        self.steps_per_epoch = rows.shape[0] // batch_size
        self._epoch = -1
        self._order: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _order_for(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation, drawn on the CPU (the same order on every device, so a run can resume
        elsewhere) and copied from pinned memory without blocking: a plain copy to a GPU waits for it."""
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(hash((self.seed, self.rank, epoch)) & 0x7FFF_FFFF_FFFF_FFFF)
            order = torch.randperm(len(self), generator=gen)
            if self.device.type == "cuda":
                order = order.pin_memory().to(self.device, non_blocking=True)
            self._order = order
            self._epoch = epoch
        assert self._order is not None
        return self._order

    def batch(self, step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The real batch of global step `step`, in [-1, 1], randomly mirrored with `gen`."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        idx = self._order_for(epoch)[pos * self.batch_size : (pos + 1) * self.batch_size]
        x = self.images.index_select(0, idx).permute(0, 3, 1, 2)
        x = x.to(torch.float32, memory_format=self.memory_format).div_(127.5).sub_(1.0)
        if self.flip:
            mirror = torch.rand(x.shape[0], generator=gen, device=self.device) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(3), x)
        labels = None if self.labels is None else self.labels.index_select(0, idx)
        return x, labels


def label_prior(labels: np.ndarray | None, n_classes: int, device: torch.device) -> torch.Tensor | None:
    """The class frequencies of the labelled rows (label -1: none), or None for an unconditional run.

    Fake labels and evaluation labels are drawn from it, so G is asked for each class as often as the
    shard holds it, and D's class head sees the same balance on real and fake batches.
    """
    if labels is None or not n_classes:
        return None
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.float64)
    return torch.tensor(counts / counts.sum(), dtype=torch.float32, device=device)
