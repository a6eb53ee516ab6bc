"""Bottleneck adapter with its own residual: y = x + W_up φ(W_down x + b_down) + b_up (model spec §2.1, §8).

VL-PET's "multi-head down-projection" (N_h Linear(d, r/N_h) whose outputs are concatenated) is exactly one
Linear(d, r) whose weight is the row-stack of the heads (model spec §2.3); we store it as one Linear and split it
only when reading or writing official checkpoints (``pet/official.py``). ``num_heads`` is kept for that mapping
and for the divisibility check.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from transformers.activations import ACT2FN


class Adapter(nn.Module):
    """Down-projection, gelu_new, up-projection, plus the input (the adapter's own residual).

    ``linear`` builds the two projections: ``nn.Linear`` (VL-PET, VL-Adapter) or a PHM layer (Compacter).
    """

    def __init__(self, d_model: int, down_dim: int, num_heads: int = 1, residual: bool = True,
                 linear: Callable[[int, int], nn.Module] = nn.Linear):
        super().__init__()
        if down_dim % num_heads:
            raise ValueError(f"adapter down dim {down_dim} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.residual = residual
        self.down = linear(d_model, down_dim)
        self.up = linear(down_dim, d_model)
        self.act = ACT2FN["gelu_new"]

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.delta(x) if self.residual else self.delta(x)

    def zero_init_up(self) -> None:
        for p in self.up.parameters():
            nn.init.zeros_(p)
