"""The official optimizer and LR schedule (pipeline spec §4.2-§4.3).

* ``HFAdamW``: the update rule of ``transformers.optimization.AdamW`` (4.2.1), not ``torch.optim.AdamW``:
  ``eps`` is added to ``sqrt(v)`` outside the bias correction, the correction is folded into the step size, and the
  decoupled weight decay ``p -= lr * wd * p`` is applied *after* the Adam update. Parameters without a gradient
  are skipped entirely (no decay either). ``foreach=True`` (default) runs the update as ``torch._foreach_*``
  multi-tensor operations over each group, bit-equal to the per-parameter loop (``foreach=False``).
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
                 weight_decay: float = 0.0, correct_bias: bool = True, foreach: bool = True):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if eps < 0.0:
            raise ValueError(f"invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias))
        self.foreach = foreach  # not a group setting: checkpoints stay loadable by either path

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and self.foreach:
                self._update_foreach(group, params)
            else:
                for p in params:
                    self._update_one(group, p)
        return loss

    def _state(self, p: torch.Tensor) -> dict:
        """The parameter's state, created on first use; its step count advanced by one."""
        if p.grad.is_sparse:
            raise RuntimeError("HFAdamW does not support sparse gradients")
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        return state

    @staticmethod
    def _step_size(group: dict, step: int) -> float:
        beta1, beta2 = group["betas"]
        if not group["correct_bias"]:
            return group["lr"]
        return group["lr"] * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)

    def _update_one(self, group: dict, p: torch.Tensor) -> None:
        """The 4.2.1 rule on one parameter (the reference the multi-tensor path is tested against)."""
        beta1, beta2 = group["betas"]
        grad, state = p.grad, self._state(p)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = exp_avg_sq.sqrt().add_(group["eps"])
        p.addcdiv_(exp_avg, denom, value=-self._step_size(group, state["step"]))
        if group["weight_decay"] > 0.0:
            p.add_(p, alpha=-group["lr"] * group["weight_decay"])

    def _update_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """The same element-wise operations in the same order as ``_update_one``, as ``torch._foreach_*``
        multi-tensor ops over the group (one kernel launch per operation on CUDA; bit-equal results)."""
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        states = [self._state(p) for p in params]
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(exp_avgs, beta1)
        torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_add_(denoms, group["eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denoms, [-self._step_size(group, s["step"]) for s in states])
        if group["weight_decay"] > 0.0:
            torch._foreach_add_(params, params, alpha=-group["lr"] * group["weight_decay"])


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
