"""G_small: one scalar per example (model spec §2.4).

g_t = σ(w·[x_t ; y_t] + b) per position, G = mean of g_t over ALL N positions (text, padding and visual tokens:
the official code applies no mask — a faithful oddity, spec §9.1). Shape (B, 1, 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Gate


class SmallGate(Gate):
    official_names = {"proj": "small_xy_cat"}  # checkpoint names in the official code

    def __init__(self, d_model: int, gate_dim: int):
        super().__init__(d_model, gate_dim)
        self.proj = nn.Linear(2 * d_model, 1)

    def weights(self, x, y):
        g = torch.sigmoid(self.proj(torch.cat([x, y], dim=-1)))
        return g.mean(dim=1, keepdim=True)
