"""Typed configuration: the single source of truth. ``param.py`` maps the published flag names onto it.

Configs are validated once in ``__post_init__`` and are plain dataclasses (``asdict`` / ``from_dict``
round-trip), so a run folder's ``config.json`` can rebuild exactly the same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

GATE_KINDS = ("none", "small", "middlex", "middley", "large")
# LST side-network initialisation: Fisher importance + structured pruning of the backbone (--load_side_pretrained_
# weights fisher-v2), or the constructors' random init (the flag's default "").
SIDE_INITS = ("fisher-v2", "none")


@dataclass
class ModelConfig:
    """The VL backbone: stock BART/T5 plus the visual embedding (model spec §7)."""

    backbone: str = field(default="bart-base", metadata={"help": "preset (bart-base, t5-base, tiny-bart, tiny-t5), "
                                                                  "hub id or local directory"})
    pretrained: bool = field(default=False, metadata={"help": "load backbone weights with from_pretrained"})
    feat_dim: int = field(default=2048, metadata={"help": "visual feature size: 2048 (CLIP RN101), 512 (video)"})
    n_boxes: int = field(default=36, metadata={"help": "visual tokens per image after --downsample"})
    downsample: bool = field(default=True, metadata={"help": "adaptive max-pool the 7x7 grid to sqrt(n)xsqrt(n)"})
    n_images: int = 2
    pos_dim: int = 4
    dropout: float = 0.1
    vocab_size: int | None = field(default=None, metadata={"help": "shared-embedding rows after the official "
                                                                    "resize; None: the backbone's rule"})
    attn_implementation: str = "sdpa"
    arch: dict[str, Any] = field(default_factory=dict, metadata={"help": "overrides of the preset's HF config "
                                                                         "fields (e.g. d_model, encoder_layers)"})

    def __post_init__(self):
        _positive(self, "feat_dim", "n_boxes", "n_images", "pos_dim")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")


@dataclass
class PETConfig:
    """Which parameter-efficient method, and its sizes. ``method`` names a builder in ``vlpet.pet.METHODS``."""

    method: str = field(default="vl-pet", metadata={"help": "vl-pet, or a baseline name"})
    gate: str = field(default="large", metadata={"help": f"VL-PET gate granularity: {', '.join(GATE_KINDS)}"})
    adapter_dim: int = field(default=96, metadata={"help": "r, --adapter_down_dim"})
    num_heads: int = field(default=4, metadata={"help": "N_h, --encoder_adapter_multihead_num_head"})
    gate_dim: int = field(default=96, metadata={"help": "r_g, --adapter_gating_down_dim (large gate)"})
    scale: float = field(default=1.0, metadata={"help": "s, --encoder_gating_scaling_factor"})
    vpa_dim: int = field(default=96, metadata={"help": "r_d, --decoder_enc_attn_value_parallel_adapter_down_dim"})
    init: str = field(default="auto", metadata={"help": "auto (bart: N(0,0.02); t5: torch defaults), bart, torch"})
    zero_init_adapter_up: bool = field(default=False, metadata={"help": "--use_encoder_multihead_up_zero_init"})
    zero_init_gate: bool = field(default=False, metadata={"help": "--use_encoder_gating_*_zero_init"})
    zero_init_vpa_up: bool = field(default=False, metadata={"help": "--use_decoder_enc_vpa_up_zero_init"})
    train_visual_embedding: bool = field(default=True, metadata={"help": "False: --freeze_vis_emb"})
    # Baselines (model spec §8).
    reduction_factor: int = field(default=8, metadata={"help": "adapter / Compacter bottleneck = d / this"})
    hypercomplex_division: int = field(default=2, metadata={"help": "Compacter n"})
    phm_init_range: float = field(default=0.01, metadata={"help": "Compacter rule init std"})
    lora_dim: int = field(default=128, metadata={"help": "LoRA rank r"})
    lora_alpha: float = field(default=32.0, metadata={"help": "LoRA alpha (scale alpha / r)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA input"})
    prompt_len: int = field(default=40, metadata={"help": "encoder prompt length"})
    prompt_mid_dim: int = field(default=800, metadata={"help": "prompt reparameterisation MLP width"})
    projected_task_embedding_dim: int = field(default=8, metadata={"help": "HyperFormer hypernetwork input size"})
    tasks: tuple[str, ...] = field(default=("vqa", "gqa", "nlvr", "caption"),
                                   metadata={"help": "tasks with their own HyperFormer task embedding"})
    # The Ladder-Side-Tuning repository's T5 configurations (spec t5-baselines-lst.md).
    adapter_train_layer_norms: bool = field(default=False, metadata={
        "help": "adapter (T5): also train the T5 LayerNorms, which the official --unfreeze_layer_norms means but "
                "does not do (a class mismatch); default False reproduces the published 7.98 %"})
    side_reduction_factor: int = field(default=8, metadata={"help": "LST side width d / this (the script: 4)"})
    side_init: str = field(default="fisher-v2", metadata={"help": f"LST side init: {', '.join(SIDE_INITS)}"})
    samples_for_fisher: int = field(default=1024, metadata={"help": "LST: training samples of the Fisher pass"})
    # MTL-LoRA (pet/mtl_lora.py; its rank and alpha are lora_dim and lora_alpha).
    mtl_b_num: int = field(default=2, metadata={"help": "MTL-LoRA: shared up-projections (--B_num)"})
    mtl_lambda_num: int = field(default=4, metadata={"help": "MTL-LoRA: task-specific transforms (--lambda_num)"})
    mtl_temperature: float = field(default=0.8, metadata={"help": "MTL-LoRA: softmax temperature "
                                                                  "(--mlora_temperature)"})
    # method "peft": any huggingface/peft tuner on the language model (vlpet.pet.peft_bridge).
    peft: dict[str, Any] | None = field(default=None, metadata={"help": "the peft config (adapter_config.json)"})
    unfreeze_bias: bool = field(default=False, metadata={"help": "peft: also train every bias (DoRA's flag)"})
    unfreeze_layer_norms: bool = field(default=False, metadata={"help": "peft: also train every LayerNorm (DoRA)"})

    def __post_init__(self):
        self.gate = self.gate.lower()
        if self.gate not in GATE_KINDS:
            raise ValueError(f"unknown gate {self.gate!r}; choose one of {GATE_KINDS}")
        _positive(self, "adapter_dim", "num_heads", "gate_dim", "vpa_dim", "reduction_factor",
                  "hypercomplex_division", "lora_dim", "prompt_len", "prompt_mid_dim", "side_reduction_factor",
                  "samples_for_fisher", "mtl_b_num", "mtl_lambda_num", "mtl_temperature")
        if self.side_init not in SIDE_INITS:
            raise ValueError(f"unknown LST side init {self.side_init!r}; choose one of {SIDE_INITS}")
        if self.adapter_dim % self.num_heads:
            raise ValueError(f"adapter_dim {self.adapter_dim} must be divisible by num_heads {self.num_heads}")
        self.tasks = tuple(self.tasks)
        if (self.method == "peft") != (self.peft is not None):
            raise ValueError("a peft config (--peft_config) goes with method 'peft', and only with it")
        if self.init not in ("auto", "bart", "torch"):
            raise ValueError(f"init must be auto, bart or torch, got {self.init!r}")


@dataclass
class SpeedConfig:
    """Options that change speed, not the method (``train.speed``); the defaults are the faithful fp32 path."""

    bf16: bool = field(default=False, metadata={"help": "bf16 autocast around forward and loss"})
    tf32: bool = field(default=False, metadata={"help": "CUDA TF32 matmuls"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model's forward"})
    compile_backend: str = "inductor"
    nan_check_every: int = field(default=1, metadata={"help": "steps between NaN/inf checks of the loss"})
    onednn: bool = field(default=False, metadata={"help": "CPU fp32: nn.Linear forwards through oneDNN"})
    deterministic: bool = field(default=False, metadata={"help": "deterministic kernels (bit-equal reruns on GPU)"})
    micro_batch_size: int = field(default=0, metadata={"help": "run each batch in chunks of this many examples, "
                                                               "one update (0: whole batches)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute each layer in the backward"})

    def __post_init__(self):
        _positive(self, "nan_check_every")
        if self.micro_batch_size < 0:
            raise ValueError(f"micro_batch_size must be 0 (off) or positive, got {self.micro_batch_size}")


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]):
    """Build ``cls`` from a dict, rejecting unknown keys by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**data)


# Published hyper-parameters (paper.md, README of the official code): what `params` and the scripts default to.
PUBLISHED_VLPET = {
    "bart": dict(adapter_dim=96, num_heads=4, gate_dim=96, scale=1.0, vpa_dim=96),
    "t5": dict(adapter_dim=192, num_heads=4, gate_dim=192, scale=0.3, vpa_dim=96,
               zero_init_adapter_up=True, zero_init_gate=True, zero_init_vpa_up=True),
}
