"""G_middleY: one value per channel, G = 1 + g with g ∈ R^d learned, no sigmoid (model spec §2.4). Shape (d,).

The official code computes ``y + y * g``; we do the same so the rounding matches. g starts N(0, 0.02) (the
explicit ``nn.init.normal_`` of the official code, which HF init leaves alone) or 0 with the T5 zero-init flag.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Gate


class MiddleYGate(Gate):
    official_names = {"g": "middle_ia3_add"}  # checkpoint names in the official code

    def __init__(self, d_model: int, gate_dim: int):
        super().__init__(d_model, gate_dim)
        self.g = nn.Parameter(torch.empty(d_model))
        nn.init.normal_(self.g, std=0.02)

    def weights(self, x, y):
        return 1 + self.g

    def forward(self, x, y):
        return y + y * self.g
