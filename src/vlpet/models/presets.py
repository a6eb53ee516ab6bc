"""Backbone architectures known offline, and how to build the stock HF model for one.

Presets reproduce the published backbones' architecture (``facebook/bart-base``, ``t5-base``) and the tiny
sizes used by the golden fixtures, so counting and tests work with no hub access. With ``pretrained=True`` the
weights come from the hub or a local directory through ``from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

# The official code adds 100 <extra_id_*> + 100 <vis_extra_id_*> tokens (model spec §7.1, §7.3).
N_ADDED_TOKENS = 200

_BART_COMMON: dict[str, Any] = dict(
    activation_function="gelu", dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, init_std=0.02,
    scale_embedding=False, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    forced_bos_token_id=None, forced_eos_token_id=None, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
)
_T5_COMMON: dict[str, Any] = dict(
    relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
    layer_norm_epsilon=1e-6, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    initializer_factor=1.0,
)


@dataclass(frozen=True)
class Preset:
    kind: str               # "bart" or "t5"
    hf_id: str | None       # hub id whose architecture this is
    arch: dict[str, Any]    # config kwargs
    vocab_after_resize: int  # rows of the shared embedding after the official resize
    # Generation defaults carried by the hub config (pipeline spec §5.1).
    generation: dict[str, Any]


_BART_GEN = dict(no_repeat_ngram_size=3, early_stopping=True)
_T5_GEN = dict(no_repeat_ngram_size=0, early_stopping=False)

PRESETS: dict[str, Preset] = {
    "bart-base": Preset("bart", "facebook/bart-base", dict(
        _BART_COMMON, vocab_size=50265, max_position_embeddings=1024, d_model=768, encoder_layers=6,
        decoder_layers=6, encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
        decoder_ffn_dim=3072), 50265 + N_ADDED_TOKENS, _BART_GEN),
    "t5-base": Preset("t5", "t5-base", dict(
        _T5_COMMON, vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
        num_heads=12), 32000 + N_ADDED_TOKENS, _T5_GEN),
    # The golden fixtures' tiny sizes (fixtures README §1.1). T5's 872 "pieces" give the same +72 new rows.
    "tiny-bart": Preset("bart", None, dict(
        _BART_COMMON, vocab_size=1000, max_position_embeddings=128, d_model=64, encoder_layers=2,
        decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128), 1000 + N_ADDED_TOKENS, _BART_GEN),
    "tiny-t5": Preset("t5", None, dict(
        _T5_COMMON, vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
        num_heads=4), 872 + N_ADDED_TOKENS, _T5_GEN),
}
_ALIASES = {"facebook/bart-base": "bart-base", "t5-base": "t5-base", "google-t5/t5-base": "t5-base"}


def resolve_preset(backbone: str) -> Preset | None:
    """The preset for a preset name or a known hub id, else None (an arbitrary hub id / local path)."""
    return PRESETS.get(backbone) or PRESETS.get(_ALIASES.get(backbone, ""))


def build_lm(backbone: str, pretrained: bool, dropout: float = 0.1, attn_implementation: str = "sdpa",
             arch: dict[str, Any] | None = None):
    """Build the stock HF seq2seq model. Returns (model, kind, generation defaults).

    ``pretrained=False`` builds the preset's architecture with random weights (offline); ``pretrained=True``
    loads weights with ``from_pretrained`` from the hub id (a preset name maps to its hub id) or a local directory.
    """
    preset = resolve_preset(backbone)
    drop = _dropout_kwargs(dropout)
    if pretrained:
        name = preset.hf_id if preset is not None and preset.hf_id and backbone in PRESETS else backbone
        if preset is not None and preset.hf_id is None:
            raise ValueError(f"the {backbone!r} preset has no pretrained weights; drop --pretrained/--load")
        return _from_pretrained(name, drop, attn_implementation)
    if preset is None:
        raise ValueError(f"unknown backbone preset {backbone!r}: choose one of {sorted(PRESETS)}, "
                         "or load weights from the hub or a local directory")
    fields = {**preset.arch, **(arch or {}), **drop[preset.kind]}
    if preset.kind == "bart":
        config, cls = BartConfig(**fields), BartForConditionalGeneration
    else:
        config, cls = T5Config(**fields), T5ForConditionalGeneration
    config._attn_implementation = attn_implementation
    return cls(config), preset.kind, dict(preset.generation)


def _dropout_kwargs(p: float) -> dict[str, dict[str, float]]:
    # The official code copies --dropout into every dropout field (model spec §0).
    return {"bart": dict(dropout=p, attention_dropout=p, activation_dropout=p), "t5": dict(dropout_rate=p)}


def _from_pretrained(name_or_path: str, drop: dict, attn_implementation: str):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type not in ("bart", "t5"):
        raise ValueError(f"{name_or_path!r} is a {config.model_type!r} model; VL-PET supports BART and T5 backbones")
    kind = config.model_type
    cls = BartForConditionalGeneration if kind == "bart" else T5ForConditionalGeneration
    model = cls.from_pretrained(name_or_path, attn_implementation=attn_implementation, **drop[kind])
    gen = _BART_GEN if kind == "bart" else _T5_GEN
    if kind == "bart":
        # 4.2.1 had no forced BOS/EOS processors; EOS forcing in beam search is done by our generate().
        model.config.forced_bos_token_id = None
        model.config.forced_eos_token_id = None
    return model, kind, dict(gen)
