"""BitFit baseline: train every bias of the backbone (Linear and LayerNorm biases) plus the visual embedding.

The official code selects parameters whose name contains "bias"; structurally that is the bias of every Linear
and LayerNorm (BART). On T5 (no biases) the official substring would also catch ``relative_attention_bias``; we
do not (a documented difference; the published BitFit runs are BART).
"""

from __future__ import annotations

import torch.nn as nn

from ..config import PETConfig
from .trainable import LAYER_NORMS, freeze_all, unfreeze_visual_embedding


def unfreeze_biases(model) -> None:
    for m in model.lm.modules():
        if isinstance(m, (nn.Linear, *LAYER_NORMS)) and getattr(m, "bias", None) is not None:
            m.bias.requires_grad_(True)


def apply_bitfit(model, cfg: PETConfig) -> list[str]:
    freeze_all(model)
    unfreeze_biases(model)
    unfreeze_visual_embedding(model)  # as every official script (no --freeze_vis_emb)
    return []


def apply_full_finetuning(model, cfg: PETConfig) -> list[str]:
    """Full fine-tuning: every parameter, the shared embedding and LM head included."""
    model.requires_grad_(True)
    return []
