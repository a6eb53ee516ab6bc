"""Initialisation schemes for newly added modules (model spec §5).

``bart``  : HF BART ``_init_weights`` — every Linear/Embedding weight N(0, 0.02), biases 0.
``torch`` : the torch constructor defaults, which the official T5 code keeps for every module it adds
            (kaiming-uniform(a=sqrt 5) weights, U(±1/sqrt fan_in) biases, N(0, 1) embeddings).
Raw ``nn.Parameter``s are never touched here: each module initialises its own (e.g. the middleY gate).
"""

from __future__ import annotations

import torch.nn as nn

INIT_STYLES = ("bart", "torch")


def init_module(module: nn.Module, style: str, std: float = 0.02) -> None:
    """Initialise every Linear and Embedding inside ``module`` with the given style."""
    if style not in INIT_STYLES:
        raise ValueError(f"unknown init style {style!r}; choose one of {INIT_STYLES}")
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            if style == "torch":
                m.reset_parameters()
            else:
                nn.init.normal_(m.weight, mean=0.0, std=std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)


def zero_(module: nn.Module) -> None:
    """Zero every parameter of ``module`` (the T5 scripts' ``*_zero_init`` flags)."""
    for p in module.parameters():
        nn.init.zeros_(p)
