"""`FacesDataset`: the shard as a torch `Dataset`, for people who train with their own loop.

    from torch.utils.data import DataLoader
    from pipeline.faces_dataset import FacesDataset

    faces = FacesDataset("data")                  # memory-mapped, sha256-checked once
    image, label = faces[0]                       # float32 [3, 64, 64] in [0, 1]; hair colour index (-1 = none)
    loader = DataLoader(faces, batch_size=64, shuffle=True, num_workers=2)

It lives in `pipeline/` beside `pipeline/shard.py`, the one reader of the shard format, because
it is a public reader of that contract and nothing else: it knows no stage's internals, and the
trainer (`train/`) keeps its own loader tuned for its device paths. Importing it is opt-in
(`pipeline` itself never imports torch), so the dataset stages stay torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline import shard


class FacesDataset(Dataset):
    """Rows of `DATA/shards/faces64.npy` with their labels, read lazily from the memory map.

    `label` names a label of the sidecar (`hair_color`, animeface's hair colour); its class names
    are `classes`, and a row without one gets -1. `transform` receives the float image tensor
    (C, H, W in [0, 1]); `raw=True` gives the uint8 HWC array instead, untouched. `ids[i]` is row
    i's crop id, which traces it back to its source URL through the manifests.
    """

    def __init__(
        self,
        data_dir: str | Path = "data",
        label: str | None = "hair_color",
        transform: Callable[[torch.Tensor], Any] | None = None,
        raw: bool = False,
        verify: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        opened = shard.open_shard(self.data_dir, verify=verify)
        self._images: np.ndarray | None = opened.images
        self.meta = opened.meta
        self.ids: list[str] = list(opened.meta["ids"])
        self.label = label
        known = label is not None and label in opened.meta.get("labels", {})
        if label is None or (known and not opened.meta.get("label_vocab", {}).get(label)):
            # No labels asked for, or none of the faces has one (e.g. the verifier was off): all -1.
            self.targets, self.classes = np.full(len(self.ids), -1, np.int64), []
        else:
            self.targets, self.classes = opened.labels(label)  # an unknown label name is a ShardError
        self.transform, self.raw = transform, raw

    @property
    def images(self) -> np.ndarray:
        """The memory map, re-opened lazily after pickling (DataLoader workers started by spawn/forkserver)."""
        if self._images is None:
            self._images = np.load(shard.shard_paths(self.data_dir)[0], mmap_mode="r", allow_pickle=False)
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies the whole array into every worker; send the path instead.
        state = dict(self.__dict__)
        state["_images"] = None
        return state

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        pixels = np.array(self.images[index])  # one row copied out of the map
        label = int(self.targets[index])
        if self.raw:
            return pixels, label
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)
        return (self.transform(image) if self.transform is not None else image), label
