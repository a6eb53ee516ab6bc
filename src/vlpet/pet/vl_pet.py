"""VL-PET (model spec §1.3, §2-§6): in every encoder layer a multi-head down-projection adapter on the
self-attention and FFN outputs, multiplied by the granularity-controlled gate G and the scale s; in the decoder a
value parallel adapter on cross-attention only. Trainable: PET modules, encoder LayerNorms, visual embedding.
"""

from __future__ import annotations

from ..config import PETConfig
from .adapter import Adapter
from .gates import build_gate
from .hosts import cross_attention_value_projections, inject_encoder
from .init import init_module
from .sublayer import SublayerPET
from .trainable import freeze_all, unfreeze_encoder_layer_norms, unfreeze_modules, unfreeze_visual_embedding
from .vpa import attach_vpa


def init_style(model, cfg: PETConfig) -> str:
    """BART: HF's N(0, 0.02); T5: the torch defaults the official T5 code keeps (model spec §5)."""
    if cfg.init != "auto":
        return cfg.init
    return "bart" if model.kind == "bart" else "torch"


def apply_vlpet(model, cfg: PETConfig) -> list[str]:
    """Inject VL-PET into a VLModel in place, initialise it, set the trainable set; return the injected names."""
    d = model.config.d_model
    style = init_style(model, cfg)

    def make_sublayer(site: str) -> SublayerPET:
        pet = SublayerPET(Adapter(d, cfg.adapter_dim, cfg.num_heads), build_gate(cfg.gate, d, cfg.gate_dim), cfg.scale,
                          site)
        init_module(pet, style)
        if cfg.zero_init_adapter_up:
            pet.adapter.zero_init_up()
        if cfg.zero_init_gate:
            pet.gate.zero_init()
        return pet

    names = inject_encoder(model, make_sublayer)
    for name, linear in cross_attention_value_projections(model).items():
        vpa = attach_vpa(linear, cfg.vpa_dim).vpa
        init_module(vpa, style)
        if cfg.zero_init_vpa_up:
            vpa.zero_init_up()
        names.append(f"{name}.vpa")

    freeze_all(model)
    unfreeze_modules(model, (SublayerPET,))
    unfreeze_modules(model.lm.get_decoder(), (Adapter,))
    unfreeze_encoder_layer_norms(model)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return names
