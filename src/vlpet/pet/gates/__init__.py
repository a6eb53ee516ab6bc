"""Granularity-controlled gates G (model spec §2.4, §3). One file per kind, registered here.

Every gate is an ``nn.Module`` with
  ``weights(x, y)``  -> G, broadcastable against y (B, N, d);
  ``forward(x, y)``  -> the gated output (normally G ⊙ y);
  ``zero_init()``    -> what the T5 scripts' gate zero-init flag does for this kind.
x is the sublayer input the gate reads (BART: post-LN x₁; T5: the raw residual stream), y = x₂ + Δ.
Adding a gate kind = one new file with a Gate subclass + one line in ``GATES``.
"""

from __future__ import annotations

from .base import Gate, IdentityGate
from .large import LargeGate
from .middle_x import MiddleXGate
from .middle_y import MiddleYGate
from .small import SmallGate

GATES: dict[str, type[Gate]] = {
    "none": IdentityGate,
    "small": SmallGate,
    "middlex": MiddleXGate,
    "middley": MiddleYGate,
    "large": LargeGate,
}


def build_gate(kind: str, d_model: int, gate_dim: int) -> Gate:
    """Build the gate named ``kind`` (case-insensitive)."""
    try:
        cls = GATES[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown gate kind {kind!r}; choose one of {sorted(GATES)}") from None
    return cls(d_model=d_model, gate_dim=gate_dim)


__all__ = ["GATES", "Gate", "build_gate"]
