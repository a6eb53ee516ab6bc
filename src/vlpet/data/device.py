"""Moving a loader's batch to the model's device: ``to_device``.

The image-text loaders hand over features as stored (float16 for the official CLIP grids), in pinned host memory
on CUDA. ``to_device`` copies every tensor without blocking (the copy overlaps with the work already queued) and
widens float16 ``vis_feats`` to float32 on the device: float16 → float32 is exact, so the model receives the very
values the float32 host path gave, at half the bytes over the bus and none of the host-side conversion. The
model's 49 → 36 grid max-pool (``models.visual.grid_max_pool``) runs on the device on these float32 values; a max
commutes with the exact widening, so pooling before or after it gives the same bits.
"""

from __future__ import annotations

import torch


def to_device(batch: dict, device: torch.device | str) -> dict:
    """``batch`` with its tensors on ``device`` (non-blocking copies) and float16 ``vis_feats`` as float32."""
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            value = value.to(device, non_blocking=True)
            if key == "vis_feats" and value.dtype == torch.float16:
                value = value.float()
        out[key] = value
    return out
