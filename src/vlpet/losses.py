"""The official training losses (pipeline spec §9.3-§9.4): token cross-entropy, no label smoothing.

VQA/GQA/NLVR2/video: per-sample mean over the non-ignored target tokens, then the batch mean (VQA weights each
sample by its answer's soft score first). COCO caption: one token-level mean over the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) cross-entropy per target token, 0 where the label is −100."""
    flat = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="none")
    return flat.view_as(labels)


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean over each sample's non-ignored tokens."""
    mask = labels.ne(IGNORE).to(logits.dtype)
    return (token_losses(logits, labels) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def sample_mean_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Batch mean of the per-sample losses, optionally weighted (VQA's soft answer score)."""
    loss = per_sample_loss(logits, labels)
    return (loss * weights if weights is not None else loss).mean()


def token_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One mean over every non-ignored token of the batch (the caption loss)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
