"""Batches onto the run's device (non-blocking copies from pinned host memory on CUDA)."""

from __future__ import annotations

import torch

from ..data.device import to_device


class DeviceLoader:
    """Moves every tensor of a batch to ``device``; keeps ``len`` and ``set_epoch``."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.dataset = getattr(loader, "dataset", None)  # evaluation reads the references from it

    def __len__(self):
        return len(self.loader)

    @property
    def steps_per_epoch(self) -> int:
        return self.loader.steps_per_epoch

    @property
    def start(self) -> int:
        return self.loader.start

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.loader.set_epoch(epoch, start)

    def __iter__(self):
        for batch in self.loader:
            out = to_device(batch, self.device)  # non-blocking from pinned memory; float16 features widened there
            if torch.is_tensor(batch.get("target_ids")):  # the host copy: the loss finds its targets without a sync
                out["target_ids_host"] = batch["target_ids"]
            yield out
