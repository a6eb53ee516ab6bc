"""fp32 ``nn.Linear`` forwards through oneDNN on CPU (``--onednn``): a speed option, not the default.

Why: torch's CPU ``F.linear`` calls MKL's sgemm, which on the team's AVX2 machine runs the shapes of this model well
below the oneDNN matmul that ships in the same torch wheel (2 threads, GFLOP/s, ``bench/README.md``): the LM head
160 × 768 → 50265 of the train step 84 vs 153, the beam step's 40 × 768 → 50265 47 vs 116, the FFN 448 × 768 → 3072
120 vs 150. No library exposes this as a switch (torch uses oneDNN for fp32 matmuls only on aarch64, or when fp32 is
allowed to drop to bf16/tf32), so this file does it for the layers of one model.

What changes: each plain ``nn.Linear`` of the model (backbone and PET modules alike; subclasses with their own
forward are left alone) becomes a ``OneDNNLinear``, same parameters, same state-dict keys. Its forward, on CPU fp32
tensors outside autocast and outside ``torch.compile``, is ``torch.ops.mkldnn._linear_pointwise`` (full fp32
accumulation, a different summation order: outputs agree with the stock path to fp32 rounding, ~1e-6 relative, not
bit for bit). The backward: ``grad_W = grad_yᵀ x`` and ``grad_b = Σ grad_y`` as stock (the input is kept only when
the weight is trained); ``grad_x = grad_y @ W`` as stock for a trained weight, and for a frozen one as a oneDNN
linear with a kept contiguous copy of ``Wᵀ`` (made at the first backward: training with ``--onednn`` holds a second
copy of every frozen Linear weight, +0.55 GB for bart-base, for ~4 % of the step; evaluation and generation make
none). Anything else (CUDA, bf16, autocast, compile, an empty batch) takes the stock ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def unavailable() -> str | None:
    """Why the oneDNN path cannot run in this torch build, or None."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (mkldnn)"
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return "this torch build lacks torch.ops.mkldnn._linear_pointwise"
    return None


class _OneDNNLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, module):
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        ctx.has_bias, ctx.module = bias is not None, module
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        flat = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            if weight.requires_grad:  # a trained weight changes every step: the stock grad_y @ W
                grad_x = flat.mm(weight).view(*grad.shape[:-1], weight.shape[1])
            else:  # grad_y @ W as a oneDNN linear whose weight is a kept copy of Wᵀ
                grad_x = torch.ops.mkldnn._linear_pointwise(grad, ctx.module.frozen_weight_t(), None, "none", [], "")
        if ctx.needs_input_grad[1]:
            grad_w = flat.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        return grad_x, grad_w, grad_b, None


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.numel() > 0 and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


class OneDNNLinear(nn.Linear):
    """An ``nn.Linear`` whose CPU fp32 forward runs on oneDNN (set by ``use_onednn``; same parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _use_onednn(x, self.weight):
            return _OneDNNLinearFn.apply(x, self.weight, self.bias, self)
        return F.linear(x, self.weight, self.bias)

    def frozen_weight_t(self) -> torch.Tensor:
        """A contiguous copy of the (frozen) ``weight.T`` for the backward, made at the first backward and again
        only if the weight is changed in place or replaced."""
        w = self.weight
        key = (w.data_ptr(), w._version, tuple(w.shape))
        kept = self.__dict__.get("_onednn_weight_t")
        if kept is None or kept[0] != key:
            kept = self.__dict__["_onednn_weight_t"] = (key, w.detach().t().contiguous())
        return kept[1]


def use_onednn(model: nn.Module) -> int:
    """Turn every plain ``nn.Linear`` in ``model`` into a ``OneDNNLinear`` in place; returns how many. Raises
    ``RuntimeError`` naming the reason when this torch build cannot do it."""
    problem = unavailable()
    if problem:
        raise RuntimeError(problem)
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
            count += 1
    return count


def use_stock(model: nn.Module) -> int:
    """Undo ``use_onednn``: every ``OneDNNLinear`` back to ``nn.Linear``; returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is OneDNNLinear:
            module.__dict__.pop("_onednn_weight_t", None)
            module.__class__ = nn.Linear
            count += 1
    return count
