"""Decoder value parallel adapter ("VPA", model spec §4).

The cross-attention value projection becomes V = W_v h + b_v + [W_up φ(W_down h + b_down) + b_up]. We class-swap
the stock ``v_proj`` (BART) / ``v`` (T5) Linear to ``VPALinear``; since the adapter lives inside the projection,
its output goes into the cross-attention K/V cache exactly once per generate() call, as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .adapter import Adapter


class VPALinear(nn.Linear):
    """An ``nn.Linear`` plus a parallel adapter on the same input. Keeps the Linear's own state-dict keys."""

    vpa: Adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.vpa.delta(x)


def attach_vpa(linear: nn.Linear, down_dim: int) -> VPALinear:
    """Turn ``linear`` (in place) into a VPALinear with a fresh adapter of bottleneck ``down_dim``."""
    adapter = Adapter(linear.in_features, down_dim, residual=False)
    linear.__class__ = VPALinear
    linear.add_module("vpa", adapter)
    return linear
