"""Evaluation sharded over the DDP ranks (issue 20 item 3): every rank predicts its share of a validation or test
split, rank 0 gathers the predictions and scores them, so no GPU idles in a barrier while rank 0 evaluates.

The split's batches are those of one process (the same batch size, in order, so the same padding and the same
predictions); rank ``r`` of ``W`` takes the contiguous block of batches ``[r·n/W, (r+1)·n/W)`` (no example twice,
none padded in). Gathering concatenates the blocks in rank order: lists come back in dataset order, dicts merge.
"""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler


class BlockBatches(Sampler):
    """The batches (lists of indices) of a sequential, non-dropping loader over ``n`` examples, restricted to the
    contiguous block of rank ``rank`` of ``world``."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1):
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        self.batches = batches[rank * len(batches) // world:(rank + 1) * len(batches) // world]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def shard_loader(loader: DataLoader, rank: int, world: int) -> DataLoader:
    """``loader`` (sequential, batched) restricted to this rank's block of batches; itself for one process.
    ``dataset`` stays the whole split (rank 0 scores against all of its references)."""
    if world <= 1:
        return loader
    sharded = DataLoader(loader.dataset, batch_sampler=BlockBatches(len(loader.dataset), loader.batch_size, rank,
                                                                    world),
                         num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)
    for name in ("task",):
        if hasattr(loader, name):
            setattr(sharded, name, getattr(loader, name))
    return sharded


def merge(parts: list):
    """The ranks' predictions in rank order as one: dicts merged, lists concatenated."""
    if all(isinstance(p, dict) for p in parts):
        out: dict = {}
        for part in parts:
            out.update(part)
        return out
    return [item for part in parts for item in part]


def gather(predictions, rank: int, world: int):
    """Every rank's ``predictions`` merged on rank 0 (``merge``); None on the other ranks. One process: as given."""
    if world <= 1 or not dist.is_initialized():
        return predictions
    parts = [None] * world if rank == 0 else None
    dist.gather_object(predictions, parts, dst=0)
    return merge(parts) if rank == 0 else None
