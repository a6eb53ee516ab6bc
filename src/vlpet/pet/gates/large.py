"""G_large: per token and channel, G = σ(W_u φ(W_d x + b_d) + b_u), from the sublayer input x only
(model spec §2.4). φ = gelu_new. Shape (B, N, d). The T5 zero-init flag zeroes the up projection only (G = 0.5).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers.activations import ACT2FN

from .base import Gate


class LargeGate(Gate):
    official_names = {"down": "large_x_down", "up": "large_x_up"}  # checkpoint names in the official code

    def __init__(self, d_model: int, gate_dim: int):
        super().__init__(d_model, gate_dim)
        self.down = nn.Linear(d_model, gate_dim)
        self.up = nn.Linear(gate_dim, d_model)
        self.act = ACT2FN["gelu_new"]

    def weights(self, x, y):
        return torch.sigmoid(self.up(self.act(self.down(x))))

    def zero_init(self) -> None:
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
