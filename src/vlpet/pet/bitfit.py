"""BitFit baseline: train every bias of the backbone (Linear and LayerNorm biases) plus the visual embedding.

BART (VL-Adapter's ``--unfreeze_bias``): the biases BART already has. The official substring "bias" would also
catch T5's ``relative_attention_bias``; we never do.
T5 (the Ladder-Side-Tuning repository's ``--use_bitfit``, spec t5-baselines-lst.md §4.2): stock T5 has no
biases, so they are added first, with that code's initialisation: q/k/v/o and the LM head keep the torch Linear
default U(±1/√d_in) (the LM head's rows added by the vocabulary resize are 0), wi/wo 0, every T5LayerNorm
(backbone and visual embedding) gets y = w ⊙ x/rms(x) + b with b = 0. The model at step 0 is therefore not
exactly the pretrained function, as in the official runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from transformers.models.t5.modeling_t5 import T5Attention, T5LayerNorm

from ..config import PETConfig
from .trainable import LAYER_NORMS, freeze_all, unfreeze_visual_embedding


class BiasedT5LayerNorm(T5LayerNorm):
    """T5's RMS norm with an additive bias (the LST fork's T5LayerNorm with BitFit on)."""

    bias: nn.Parameter

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden_states) + self.bias


def _new_bias(linear: nn.Linear, uniform: bool, rows: int | None = None) -> None:
    bias = torch.zeros(linear.out_features, device=linear.weight.device, dtype=linear.weight.dtype)
    if uniform:
        bound = 1 / math.sqrt(linear.in_features)
        nn.init.uniform_(bias[:rows], -bound, bound)
    linear.bias = nn.Parameter(bias)


def add_t5_biases(model) -> None:
    """Give every T5 Linear (attention, FFN, LM head) and every T5LayerNorm a bias, initialised as above."""
    for module in model.modules():
        if isinstance(module, T5Attention):
            for linear in (module.q, module.k, module.v, module.o):
                _new_bias(linear, uniform=True)
        elif isinstance(module, T5LayerNorm) and not isinstance(module, BiasedT5LayerNorm):
            module.__class__ = BiasedT5LayerNorm
            module.bias = nn.Parameter(torch.zeros_like(module.weight))
    for name in ("wi", "wo"):
        for module in model.lm.modules():
            if isinstance(getattr(module, name, None), nn.Linear):
                _new_bias(getattr(module, name), uniform=False)
    _new_bias(model.lm.lm_head, uniform=True, rows=getattr(model, "base_vocab_size", None))


def unfreeze_biases(model) -> None:
    for m in model.lm.modules():
        if isinstance(m, (nn.Linear, *LAYER_NORMS)) and getattr(m, "bias", None) is not None:
            m.bias.requires_grad_(True)


def apply_bitfit(model, cfg: PETConfig) -> list[str]:
    if model.kind == "t5":
        add_t5_biases(model)
    freeze_all(model)
    unfreeze_biases(model)
    unfreeze_visual_embedding(model)  # as every official script (no --freeze_vis_emb)
    return []


def apply_full_finetuning(model, cfg: PETConfig) -> list[str]:
    """Full fine-tuning: every parameter, the shared embedding and LM head included."""
    model.requires_grad_(True)
    return []
