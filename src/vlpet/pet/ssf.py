"""SSF (Lian et al., NeurIPS 2022, "Scaling & Shifting Your Features"): y ← γ ⊙ y + β after a frozen Linear.

Here: after every Linear of the encoder and decoder stacks (attention and FFN projections; not the LM head), one
γ and one β per output channel. γ starts at N(1, 0.02) and β at N(0, 0.02), the paper's init, so the model starts
close to the backbone. Trainable: γ, β and the visual embedding (as in every VL baseline). The paper also scales
and shifts after LayerNorms; those are left frozen here. Not a method of the VL-PET paper: the worked example of
docs/extending.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PETConfig
from .trainable import freeze_all, unfreeze_visual_embedding


class SSFLinear(nn.Linear):
    ssf_scale: nn.Parameter
    ssf_shift: nn.Parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) * self.ssf_scale + self.ssf_shift


def attach_ssf(linear: nn.Linear) -> SSFLinear:
    """Class-swap a Linear in place: same weight and bias (same state-dict keys), plus γ and β."""
    linear.__class__ = SSFLinear
    kw = dict(device=linear.weight.device, dtype=linear.weight.dtype)
    linear.ssf_scale = nn.Parameter(torch.empty(linear.out_features, **kw))
    linear.ssf_shift = nn.Parameter(torch.empty(linear.out_features, **kw))
    nn.init.normal_(linear.ssf_scale, mean=1.0, std=0.02)
    nn.init.normal_(linear.ssf_shift, std=0.02)
    return linear


def ssf_targets(model) -> dict[str, nn.Linear]:
    """Every plain Linear inside the encoder and decoder stacks, by its name in the model."""
    inside = {id(m) for stack in (model.lm.get_encoder(), model.lm.get_decoder()) for m in stack.modules()}
    return {name: m for name, m in model.named_modules() if type(m) is nn.Linear and id(m) in inside}


def apply_ssf(model, cfg: PETConfig) -> list[str]:
    targets = ssf_targets(model)
    for linear in targets.values():
        attach_ssf(linear)
    freeze_all(model)
    for linear in targets.values():
        linear.ssf_scale.requires_grad_(True)
        linear.ssf_shift.requires_grad_(True)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return list(targets)
