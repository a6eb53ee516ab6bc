"""VL-Adapter's single adapter and Compacter baselines, and Table 9's "VL-PET designs on existing PET".

Plain baselines (gate ``none``): one adapter after every sublayer (encoder attention and FFN, decoder self-,
cross-attention and FFN), y = x₂ + Δ(x₂) before dropout, residual and LN; trainable: adapters, every LayerNorm,
the visual embedding. Bottleneck d / reduction_factor (96 for bart-base).
``adapter`` (T5, the LST repository's configuration): the same adapters with the LayerNorms frozen.
Table 9 (gate small/middleX/middleY/large): the encoder adapters get the VL-PET gate (and scale), the encoder
LayerNorms are trainable ("LW"), and in the decoder only the cross-attention adapters are kept (model spec §1.4).
"""

from __future__ import annotations

from functools import partial

import torch.nn as nn

from ..config import PETConfig
from .adapter import Adapter
from .compacter import PHMLinear
from .gates import build_gate
from .hosts import inject_decoder, inject_encoder
from .init import init_module
from .sublayer import SublayerPET
from .trainable import (freeze_all, unfreeze_all_layer_norms, unfreeze_encoder_layer_norms, unfreeze_modules,
                        unfreeze_visual_embedding)
from .vl_pet import init_style


def _apply(model, cfg: PETConfig, linear, layer_norms: str = "all") -> list[str]:
    d = model.config.d_model
    style = init_style(model, cfg)
    gated = cfg.gate != "none"

    def make(site: str, encoder: bool) -> SublayerPET | None:
        if not encoder and gated and site != "cross":
            return None
        gate = build_gate(cfg.gate if encoder else "none", d, cfg.gate_dim)
        pet = SublayerPET(Adapter(d, d // cfg.reduction_factor, linear=linear), gate,
                          cfg.scale if encoder else 1.0, site, naming="controller")
        init_module(pet, style)  # PHM layers keep their own init (HF init skips them too)
        return pet

    names = inject_encoder(model, partial(make, encoder=True)) + inject_decoder(model, partial(make, encoder=False))
    freeze_all(model)
    unfreeze_modules(model, (SublayerPET,))
    if gated:
        unfreeze_encoder_layer_norms(model)
    elif layer_norms == "all":
        unfreeze_all_layer_norms(model)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return names


def apply_single_adapter(model, cfg: PETConfig) -> list[str]:
    return _apply(model, cfg, linear=nn.Linear)


def apply_adapter(model, cfg: PETConfig) -> list[str]:
    """The Ladder-Side-Tuning repository's T5 adapter (spec t5-baselines-lst.md §4.5): the same single adapter
    (bottleneck d / 4 there) after all 60 sublayers, but its ``--unfreeze_layer_norms`` is a no-op on T5 (an
    ``isinstance`` test against another T5LayerNorm class), so the LayerNorms stay frozen: 7.98 %. The named
    option ``adapter_train_layer_norms`` trains them as the flag intends (8.00 %)."""
    return _apply(model, cfg, linear=nn.Linear, layer_norms="all" if cfg.adapter_train_layer_norms else "none")


def apply_single_compacter(model, cfg: PETConfig) -> list[str]:
    return _apply(model, cfg, linear=partial(PHMLinear, n=cfg.hypercomplex_division, init_range=cfg.phm_init_range))
