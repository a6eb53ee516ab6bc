"""Prompt-tuning baseline (model spec §8): P = W₂ tanh(W₁ E + b₁) + b₂ with E ∈ R^{P×d} learned, prepended to the
encoder text embeddings (after BART's positions, through LN_emb; no positions of its own). One prompt shared by
all tasks. Trainable: the prompt and the visual embedding. Init N(0, 0.02) (BART) / torch defaults (T5).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import PETConfig
from .init import init_module
from .trainable import freeze_all, unfreeze_visual_embedding


class EncoderPrompt(nn.Module):
    def __init__(self, length: int, d_model: int, mid_dim: int):
        super().__init__()
        self.prefix_embedding = nn.Sequential(nn.Embedding(length, d_model), nn.Linear(d_model, mid_dim), nn.Tanh(),
                                              nn.Linear(mid_dim, d_model))
        self.register_buffer("positions", torch.arange(length), persistent=False)

    def forward(self, batch_size: int, task: str | None = None) -> torch.Tensor:
        return self.prefix_embedding(self.positions).unsqueeze(0).expand(batch_size, -1, -1)


def apply_prompt(model, cfg: PETConfig) -> list[str]:
    from .vl_pet import init_style

    prompt = EncoderPrompt(cfg.prompt_len, model.config.d_model, cfg.prompt_mid_dim)
    init_module(prompt, init_style(model, cfg))
    model.encoder_prefix = prompt.to(model.visual_embedding.img_order_embedding.weight.device)
    freeze_all(model)
    prompt.requires_grad_(True)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return ["encoder_prefix"]
