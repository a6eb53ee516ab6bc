"""Compacter's parameterised hypercomplex multiplication (PHM) layer (model spec §8).

H = Σ_{i=1..n} C_i ⊗ W_i (Kronecker products), with C ∈ R^{n×n×n} (the "rule", one per layer as
``--shared_phm_rule False``) and W_i ∈ R^{(in/n)×(out/n)} full rank (``--factorized_phm False``); y = x H + b.
Init as the official code: W_i Xavier-uniform with gain √2, b = 0, C ~ N(0, phm_init_range). HF init skips it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class PHMLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, n: int = 2, init_range: float = 0.01):
        super().__init__()
        if in_features % n or out_features % n:
            raise ValueError(f"PHM layer {in_features}→{out_features} is not divisible by n = {n}")
        self.n = n
        self.W = nn.Parameter(torch.empty(n, in_features // n, out_features // n))
        self.b = nn.Parameter(torch.zeros(out_features))
        self.phm_rule = nn.Parameter(torch.empty(n, n, n))
        for i in range(n):
            nn.init.xavier_uniform_(self.W.data[i], gain=math.sqrt(2))
        nn.init.normal_(self.phm_rule, std=init_range)

    def weight(self) -> torch.Tensor:
        """The (in, out) matrix H = Σ_i C_i ⊗ W_i."""
        n, a, c = self.phm_rule.shape
        _, k, p = self.W.shape
        return torch.einsum("bac,bkp->bakcp", self.phm_rule, self.W).reshape(n, a * k, c * p).sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight()) + self.b
