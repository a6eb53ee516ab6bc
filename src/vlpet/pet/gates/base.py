"""Gate base class and the identity gate (no gating: the classic adapter placement)."""

from __future__ import annotations

import torch
import torch.nn as nn


class Gate(nn.Module):
    """G(x, y); see the package docstring for the contract."""

    # Our parameter-owner name → the official code's ``encoder_{attn,ff}_adapter_gating_<name>`` (pet/official.py).
    official_names: dict[str, str] = {}

    def __init__(self, d_model: int, gate_dim: int):
        super().__init__()

    def weights(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y * self.weights(x, y)

    def zero_init(self) -> None:
        for p in self.parameters():
            nn.init.zeros_(p)


class IdentityGate(Gate):
    """G ≡ 1 (no parameters)."""

    def weights(self, x, y):
        return torch.ones((), dtype=y.dtype, device=y.device)

    def forward(self, x, y):
        return y
