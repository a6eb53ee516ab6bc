"""The PET applied to one encoder sublayer output (model spec §2.1-§2.2, §3):

    y = adapter(x₂)          (x₂ + Δ(x₂), or x₂ when the sublayer has no adapter)
    y = gate(x, y)           (G ⊙ y; G ≡ 1 without a gate)
    y = s · y                (the T5 scripts' scaling of the WHOLE gated output; s = 1 for BART)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .gates import Gate


class SublayerPET(nn.Module):
    def __init__(self, adapter: nn.Module | None, gate: Gate, scale: float = 1.0, site: str = "attn",
                 naming: str = "vl-pet"):
        super().__init__()
        self.site = site  # encoder "attn" / "ffn", decoder "self" / "cross" / "ffn"
        # Official checkpoint naming of the adapter: "vl-pet" (multi-head names) or "controller"
        # (VL-Adapter's AdapterController: ``<site>_adapter.adapters.<task>.{down,up}_sampler``).
        self.naming = naming
        self.adapter = adapter
        self.gate = gate
        self.scale = scale

    def forward(self, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        y = self.adapter(x2) if self.adapter is not None else x2
        y = self.gate(x, y)
        return y * self.scale if self.scale != 1.0 else y

    def extra_repr(self) -> str:
        return f"site={self.site}, scale={self.scale}"
