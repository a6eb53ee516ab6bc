"""Structural freezing: freeze everything, then unfreeze modules by type (never by name substring)."""

from __future__ import annotations

import torch.nn as nn
from transformers.models.t5.modeling_t5 import T5LayerNorm

LAYER_NORMS = (nn.LayerNorm, T5LayerNorm)


def freeze_all(model: nn.Module) -> None:
    model.requires_grad_(False)


def unfreeze_modules(root: nn.Module, types: tuple[type, ...]) -> None:
    for m in root.modules():
        if isinstance(m, types):
            m.requires_grad_(True)


def unfreeze_encoder_layer_norms(model) -> None:
    """BART: layernorm_embedding + both LNs of every layer; T5: both LNs of every block + the final LN."""
    unfreeze_modules(model.lm.get_encoder(), LAYER_NORMS)


def unfreeze_all_layer_norms(model) -> None:
    """Every LayerNorm anywhere (encoder, decoder, visual embedding): ``--unfreeze_layer_norms``."""
    unfreeze_modules(model, LAYER_NORMS)


def unfreeze_visual_embedding(model) -> None:
    model.visual_embedding.requires_grad_(True)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total), each shared Parameter counted once: the official Params (%) convention (§6)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def percentage_line(trainable: int, total: int) -> str:
    """The official line, e.g. ``Trainable param percentage: 4.16% (6052416/145606464)``."""
    return f"Trainable param percentage: {100 * trainable / total:.2f}% ({trainable}/{total})"
