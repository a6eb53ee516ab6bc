"""Build a VL-BART / VL-T5 with a PET method, in the official order (model spec §5):
backbone → vocabulary resize → visual embedding → PET injection + initialisation → trainable set.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers.models.t5.modeling_t5 import T5LayerNorm

from ..config import ModelConfig, PETConfig
from ..pet import apply_method
from ..pet.init import init_module
from .presets import N_ADDED_TOKENS, build_lm, resolve_preset
from .visual import VisualEmbedding
from .vl_model import VLModel


def vocab_after_resize(cfg: ModelConfig, kind: str, base_vocab: int) -> int:
    """Rows of the shared embedding after the official resize: BART base + 200; T5 the tokenizer's 32000 + 200."""
    if cfg.vocab_size is not None:
        return cfg.vocab_size
    preset = resolve_preset(cfg.backbone)
    if preset is not None:
        return preset.vocab_after_resize
    return base_vocab + N_ADDED_TOKENS if kind == "bart" else 32000 + N_ADDED_TOKENS


def build_visual_embedding(cfg: ModelConfig, lm: nn.Module, kind: str) -> VisualEmbedding:
    d = lm.config.d_model
    if kind == "bart":
        vis = VisualEmbedding(cfg.feat_dim, d, nn.LayerNorm, cfg.n_images, cfg.pos_dim)
        init_module(vis, "bart", std=lm.config.init_std)
    else:
        vis = VisualEmbedding(cfg.feat_dim, d, T5LayerNorm, cfg.n_images, cfg.pos_dim,
                              eps=lm.config.layer_norm_epsilon)
        init_module(vis, "torch")
    return vis


def build_model(model_cfg: ModelConfig, pet_cfg: PETConfig | None) -> VLModel:
    """The VL model with ``pet_cfg``'s method injected (``None``: the plain VL backbone, everything trainable)."""
    lm, kind, generation = build_lm(model_cfg.backbone, model_cfg.pretrained, model_cfg.dropout,
                                    model_cfg.attn_implementation, model_cfg.arch)
    base_vocab = lm.config.vocab_size
    rows = vocab_after_resize(model_cfg, kind, base_vocab)
    if rows != lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(rows, mean_resizing=False)
    model = VLModel(lm, kind, build_visual_embedding(model_cfg, lm, kind), model_cfg.n_boxes,
                    model_cfg.downsample, generation)
    model.base_vocab_size = base_vocab  # the backbone's rows before the resize (T5 BitFit's LM-head bias init)
    if pet_cfg is not None:
        model.injected = apply_method(model, pet_cfg)
    return model


def build_on_meta(model_cfg: ModelConfig, pet_cfg: PETConfig | None) -> VLModel:
    """Same structure without allocating weights (for counting parameters in seconds)."""
    with torch.device("meta"):
        return build_model(model_cfg, pet_cfg)
