"""LoRA baseline (model spec §8): W x + b + (α/r) · B A Dropout(x) on q_proj and v_proj of every attention block.

The official LoRA run also trains every bias (and the visual embedding): it is LoRA + BitFit in effect. A is
kaiming-uniform(a=√5), B = 0, so the model starts as the backbone. Merging into W is possible (linear) but not
needed for training; ``merge`` is not provided.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PETConfig
from .bitfit import unfreeze_biases
from .trainable import freeze_all, unfreeze_visual_embedding


class LoRALinear(nn.Linear):
    lora_A: nn.Parameter
    lora_B: nn.Parameter
    lora_scaling: float
    lora_dropout: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = F.linear(x, self.weight, self.bias)
        x = F.dropout(x, p=self.lora_dropout, training=self.training)
        return result + (x @ self.lora_A.T @ self.lora_B.T) * self.lora_scaling


def attach_lora(linear: nn.Linear, r: int, alpha: float, dropout: float) -> LoRALinear:
    linear.__class__ = LoRALinear
    kw = dict(device=linear.weight.device, dtype=linear.weight.dtype)
    linear.lora_A = nn.Parameter(torch.empty(r, linear.in_features, **kw))
    linear.lora_B = nn.Parameter(torch.zeros(linear.out_features, r, **kw))
    nn.init.kaiming_uniform_(linear.lora_A, a=math.sqrt(5))
    linear.lora_scaling, linear.lora_dropout = alpha / r, dropout
    return linear


def lora_targets(model) -> dict[str, nn.Linear]:
    """q and v projections of the encoder self-attention and the decoder self- and cross-attention."""
    names = ("q_proj", "v_proj") if model.kind == "bart" else ("q", "v")
    parents = ("self_attn", "encoder_attn", "SelfAttention", "EncDecAttention")
    return {f"{name}.{leaf}": getattr(module, leaf) for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1] in parents for leaf in names}


def apply_lora(model, cfg: PETConfig) -> list[str]:
    targets = lora_targets(model)
    for linear in targets.values():
        attach_lora(linear, cfg.lora_dim, cfg.lora_alpha, cfg.lora_dropout)
    freeze_all(model)
    for linear in targets.values():
        linear.lora_A.requires_grad_(True)
        linear.lora_B.requires_grad_(True)
    unfreeze_biases(model)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return list(targets)
