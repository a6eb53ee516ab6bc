"""G_middleX: one scalar per token, G_t = σ(w·(x_t + y_t) + b) (model spec §2.4). Shape (B, N, 1)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Gate


class MiddleXGate(Gate):
    official_names = {"proj": "middle_xy_add"}  # checkpoint names in the official code

    def __init__(self, d_model: int, gate_dim: int):
        super().__init__(d_model, gate_dim)
        self.proj = nn.Linear(d_model, 1)

    def weights(self, x, y):
        return torch.sigmoid(self.proj(x + y))
