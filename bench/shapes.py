"""The trainer's real batch shapes for the benches (issue 20 item 8): per-task batch sizes, text and target lengths.

* Batch sizes: ``vlpet.data.multitask.task_batch_sizes`` of the published ``--batch_size`` (BART 500, T5 300):
  VQA B, GQA ⌊B·100/60⌋ (833 for BART: the memory peak), NLVR2 ⌊B·20/60⌋, caption ⌊B·50/60⌋;
  evaluation uses the same per-task sizes of ``--valid_batch_size`` (the published scripts pass the same number).
* Text: VQA/GQA questions truncated to 20 tokens (prompt included), NLVR2 statements never truncated (12-48 tokens
  here), the caption input is the prompt alone (4 tokens); every batch is padded to its longest example.
* Visual tokens: a 7×7 grid pooled to 36 per image; NLVR2 has two images (72 tokens).
* Targets: VQA/GQA answers 2-5 tokens with EOS, NLVR2 "true"/"false" + EOS (2), captions 9-40 tokens (mean ≈ 14,
  as COCO's ≈ 11 words; one example of every batch at the 40-token cap, so the batch is padded to 40 as in training).
The lengths are drawn from a seeded generator (uniform in the ranges, the caption lengths geometric above 9), the
first example of a batch at the cap (so a small measured batch is padded as a published one).
"""

from __future__ import annotations

import torch

from vlpet.data.multitask import task_batch_sizes

PUBLISHED_BATCH = {"bart": 500, "t5": 300}
TASKS = ("vqa", "gqa", "nlvr", "caption")
TEXT = {"vqa": (8, 20), "gqa": (8, 20), "nlvr": (12, 48), "caption": (4, 4)}
TARGET = {"vqa": (2, 5), "gqa": (2, 5), "nlvr": (2, 2), "caption": (9, 40)}
GRID = 49


def task_batch(kind: str, task: str, batch_size: int | None = None) -> int:
    """The trainer's batch for ``task`` under the published (or the given) ``--batch_size``."""
    return max(1, task_batch_sizes(batch_size or PUBLISHED_BATCH[kind])[task])


def _lengths(g: torch.Generator, size: int, low: int, high: int, geometric: bool = False) -> torch.Tensor:
    """Lengths in [low, high]; the first example at the cap, so that a batch of any size is padded as a
    published-size batch is (one of 500 questions reaches 20 tokens, one of 416 captions 40)."""
    if geometric:  # mean ≈ low + 5
        out = (low + torch.empty(size).exponential_(1 / 5.0, generator=g).long()).clamp(max=high)
    else:
        out = torch.randint(low, high + 1, (size,), generator=g)
    out[0] = high
    return out


def make_task_batch(model, task: str, size: int, device: torch.device, seed: int = 0, feat_dim: int = 2048) -> dict:
    """A batch as ``DeviceLoader`` yields it for ``task``: padded ``input_ids`` (pad id), ``vis_feats`` (B, 49, F) or
    (B, 2, 49, F) for NLVR2, zero ``boxes``, ``target_ids`` (-100 after each target), ``scores`` (VQA), and the host
    copy ``target_ids_host``."""
    cfg = model.config
    low, high = 5, min(cfg.vocab_size, 32000)
    g = torch.Generator().manual_seed(seed)
    text = _lengths(g, size, *TEXT[task])
    ids = torch.full((size, int(text.max())), cfg.pad_token_id, dtype=torch.long)
    for i, n in enumerate(text.tolist()):
        ids[i, :n] = torch.randint(low, high, (n,), generator=g)
    target = _lengths(g, size, *TARGET[task], geometric=task == "caption")
    labels = torch.full((size, int(target.max())), -100, dtype=torch.long)
    for i, n in enumerate(target.tolist()):
        labels[i, :n] = torch.randint(low, high, (n,), generator=g)
        labels[i, n - 1] = cfg.eos_token_id
    shape = (size, 2, GRID, feat_dim) if task == "nlvr" else (size, GRID, feat_dim)
    feats = torch.randn(*shape, generator=g)
    batch = {"task": task, "input_ids": ids, "vis_feats": feats, "boxes": torch.zeros(*shape[:-1], 4),
             "target_ids": labels}
    if task == "vqa":
        batch["scores"] = torch.rand(size, generator=g)
    out = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    out["target_ids_host"] = labels
    return out


def describe(batch: dict) -> dict:
    """The shape fields the benches report."""
    feats = batch["vis_feats"]
    ids = batch["input_ids"]
    return {"task": batch["task"], "batch": int(ids.shape[0]), "text_len": int(ids.shape[1]),
            "images": 2 if feats.dim() == 4 else 1, "target_len": int(batch["target_ids"].shape[1]),
            "target_tokens": int(batch["target_ids_host"].ne(-100).sum())}
