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


# ------------------------------------------------------------------------------------ logits at the targets only
# Training computes the LM head only at the target positions that carry a loss (``VLModel.forward(target_index=…)``):
# the logits arrive as (N, vocab) rows, N the number of labels that are not −100, in row-major (B, T) order. The
# losses below are the ones above on those rows: the same values (each row's cross-entropy is the same), without
# the LM-head work, logits memory and log-softmax of the padded positions.

def target_index(labels: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Flat (B·T) indices of the labels that are not −100, on ``device``. Give the host copy of the labels (the
    batch's ``target_ids_host``) so that no device is read: the count of targets decides a shape."""
    index = labels.reshape(-1).ne(IGNORE).nonzero().squeeze(1)
    device = torch.device(device or labels.device)
    if device.type == "cuda" and index.device.type == "cpu":
        index = index.pin_memory()  # a pinned source: the copy is queued, the host does not wait for the device
    return index.to(device, non_blocking=True)


def packed_per_sample_loss(rows: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``per_sample_loss`` from the target rows' logits (N, vocab)."""
    flat = F.cross_entropy(rows.float(), labels.reshape(-1).index_select(0, index), reduction="none")
    tokens = flat.new_zeros(labels.numel()).index_copy(0, index, flat).view_as(labels)  # 0 where ignored
    return tokens.sum(dim=1) / labels.ne(IGNORE).sum(dim=1).clamp(min=1)


def packed_sample_mean_loss(rows: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
                            weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sample_mean_loss`` from the target rows' logits."""
    loss = packed_per_sample_loss(rows, labels, index)
    return (loss * weights if weights is not None else loss).mean()


def packed_token_mean_loss(rows: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``token_mean_loss`` from the target rows' logits."""
    return F.cross_entropy(rows.float(), labels.reshape(-1).index_select(0, index))
