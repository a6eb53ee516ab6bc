"""MTL-LoRA (Yang et al., AAAI 2025; pUmpKin-Co/MTL-LoRA ``image_text_understanding/VL-T5/src/trainer_base.py``,
``mLoRALinear``), which peft lacks, on q_proj and v_proj of every attention (as their VL-BART script):

    y = W x + b + (α/r) · B_t Λ_t A x,   B_t = Σ_j softmax(w_t / τ)_j B_j

with one shared down-projection A (r × d_in; stored (1, r, d_in) as theirs), a task-specific r × r transform Λ_t
(identity at init), ``n_B`` shared up-projections B_j (zero at init) mixed with task-specific weights w_t (kaiming
uniform, a = √5) through a softmax at temperature τ. The task is ``VLModel.current_task`` (the loader's batches are
single-task); its row is the task's position in ``--tasks`` (their fixed order vqa, gqa, nlvr, caption for the
published run), of ``--lambda_num`` rows. Trainable: A, Λ, B, w and the visual embedding (their biases stay frozen).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PETConfig
from .lora import lora_targets
from .trainable import freeze_all, unfreeze_visual_embedding


class MTLLoRALinear(nn.Linear):
    lora_A: nn.Parameter        # (1, r, d_in)
    lora_lambdas: nn.Parameter  # (T, r, r)
    lora_B: nn.Parameter        # (n_B, d_out, r)
    lora_B_w: nn.Parameter      # (T, n_B)
    mtl_scaling: float
    mtl_temperature: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self._task_index()
        mix = F.softmax(self.lora_B_w[t] / self.mtl_temperature, dim=-1, dtype=torch.float32).to(self.lora_B.dtype)
        up = torch.einsum("j,jor->or", mix, self.lora_B)
        delta = x @ self.lora_A[0].T @ self.lora_lambdas[t].T @ up.T
        return F.linear(x, self.weight, self.bias) + delta * self.mtl_scaling

    def _task_index(self) -> int:
        task = self._vl_model.current_task
        if task not in self._task_rows:
            raise ValueError(f"MTL-LoRA needs the batch's task (one of {list(self._task_rows)}), got {task!r}")
        return self._task_rows[task]


def attach_mtl_lora(linear: nn.Linear, model, cfg: PETConfig) -> MTLLoRALinear:
    r, n_b, rows = cfg.lora_dim, cfg.mtl_b_num, cfg.mtl_lambda_num
    kw = dict(device=linear.weight.device, dtype=linear.weight.dtype)
    linear.__class__ = MTLLoRALinear
    linear.lora_A = nn.Parameter(torch.empty(1, r, linear.in_features, **kw))
    linear.lora_lambdas = nn.Parameter(torch.eye(r, **kw).repeat(rows, 1, 1))
    linear.lora_B = nn.Parameter(torch.zeros(n_b, linear.out_features, r, **kw))
    linear.lora_B_w = nn.Parameter(torch.empty(rows, n_b, **kw))
    nn.init.kaiming_uniform_(linear.lora_A[0], a=math.sqrt(5))
    nn.init.kaiming_uniform_(linear.lora_B_w, a=math.sqrt(5))
    linear.mtl_scaling, linear.mtl_temperature = cfg.lora_alpha / r, cfg.mtl_temperature
    object.__setattr__(linear, "_vl_model", model)  # read-only back reference for the current task (not a child)
    object.__setattr__(linear, "_task_rows", {task: i for i, task in enumerate(cfg.tasks)})
    return linear


def apply_mtl_lora(model, cfg: PETConfig) -> list[str]:
    if len(cfg.tasks) > cfg.mtl_lambda_num:
        raise ValueError(f"MTL-LoRA: {len(cfg.tasks)} tasks need --lambda_num {len(cfg.tasks)} or more "
                         f"(got {cfg.mtl_lambda_num})")
    targets = lora_targets(model)
    for linear in targets.values():
        attach_mtl_lora(linear, model, cfg)
    freeze_all(model)
    for linear in targets.values():
        for p in (linear.lora_A, linear.lora_lambdas, linear.lora_B, linear.lora_B_w):
            p.requires_grad_(True)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return list(targets)
