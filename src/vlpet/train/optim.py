"""The official optimizer and LR schedule (pipeline spec §4.2-§4.3).

* ``HFAdamW``: the update rule of ``transformers.optimization.AdamW`` (4.2.1), not ``torch.optim.AdamW``:
  ``eps`` is added to ``sqrt(v)`` outside the bias correction, the correction is folded into the step size, and the
  decoupled weight decay ``p -= lr * wd * p`` is applied *after* the Adam update. Parameters without a gradient
  are skipped entirely (no decay either).
* ``param_groups``: decay for every trainable parameter whose name contains neither ``"bias"`` nor
  ``"LayerNorm.weight"`` (which never matches BART/T5 names, so LayerNorm weights are decayed, as officially).
* ``linear_warmup_schedule``: ``get_linear_schedule_with_warmup`` with ``int(total * warmup_ratio)`` warm-up steps.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

NO_DECAY = ("bias", "LayerNorm.weight")


class HFAdamW(torch.optim.Optimizer):
    """AdamW as in transformers 4.2.1 ``optimization.AdamW`` (defaults of the official run: eps 1e-6)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, correct_bias: bool = True):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if eps < 0.0:
            raise ValueError(f"invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("HFAdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"]
                if group["correct_bias"]:
                    t = state["step"]
                    step_size = step_size * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
                p.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two groups over the trainable parameters: decayed, and the ``NO_DECAY`` names with weight_decay 0."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0},
    ]


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.1) -> LambdaLR:
    """LR factor rising linearly 0 -> 1 over ``int(total_steps * warmup_ratio)`` steps, then falling to 0."""
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
