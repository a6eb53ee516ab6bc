"""Backbone architectures known offline, and how to build the stock HF model for one.

Presets reproduce the published backbones' architecture (``facebook/bart-base``, ``t5-base``), larger and newer
encoder-decoders of the supported families (``FAMILIES``: BART, pre-LN mBART, T5 v1.0, T5 v1.1 / Flan-T5) with the
numbers of their released configs, and tiny sizes for tests (the golden fixtures' ``tiny-bart`` / ``tiny-t5``, one
tiny variant per other family), so counting and tests work with no hub access. With ``pretrained=True`` the
weights come from the hub or a local directory through ``from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import (BartConfig, BartForConditionalGeneration, MBartConfig, MBartForConditionalGeneration,
                          T5Config, T5ForConditionalGeneration)

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
# T5 v1.1 / Flan-T5: gated-GELU FFN (``T5DenseGatedActDense``: wi_0, wi_1, wo) and an untied LM head.
_T5_V11: dict[str, Any] = dict(_T5_COMMON, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
# mBART (pre-LN: LN before each sublayer, final encoder/decoder LayerNorms; embeddings scaled by sqrt(d)).
_MBART_COMMON: dict[str, Any] = dict(_BART_COMMON, scale_embedding=True, attention_dropout=0.0,
                                     activation_dropout=0.0)

# The supported families: config model_type -> (layout kind, config class, model class). "bart" and "mbart" share
# the BART module layout (model.encoder.layers, ...); T5 v1.0 and v1.1 / Flan-T5 are both model_type "t5".
FAMILIES: dict[str, tuple[str, type, type]] = {
    "bart": ("bart", BartConfig, BartForConditionalGeneration),
    "mbart": ("bart", MBartConfig, MBartForConditionalGeneration),
    "t5": ("t5", T5Config, T5ForConditionalGeneration),
}
SUPPORTED_FAMILIES = "BART (bart), pre-LN mBART (mbart), T5 v1.0 and T5 v1.1 / Flan-T5 (t5)"


@dataclass(frozen=True)
class Preset:
    kind: str               # "bart" or "t5"
    hf_id: str | None       # hub id whose architecture this is
    arch: dict[str, Any]    # config kwargs
    vocab_after_resize: int  # rows of the shared embedding after the official resize
    # Generation defaults carried by the hub config (pipeline spec §5.1).
    generation: dict[str, Any]
    family: str = ""         # config model_type (a FAMILIES key); "" = the kind

    @property
    def model_type(self) -> str:
        return self.family or self.kind


_BART_GEN = dict(no_repeat_ngram_size=3, early_stopping=True)
_T5_GEN = dict(no_repeat_ngram_size=0, early_stopping=False)
_MBART_GEN = dict(no_repeat_ngram_size=0, early_stopping=True)
_GENERATION = {"bart": _BART_GEN, "mbart": _MBART_GEN, "t5": _T5_GEN}
_LARGE_BART = dict(max_position_embeddings=1024, d_model=1024, encoder_layers=12, decoder_layers=12,
                   encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096)
_TINY_BART = dict(vocab_size=1000, max_position_embeddings=128, d_model=64, encoder_layers=2, decoder_layers=2,
                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128)
_TINY_T5 = dict(vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4)
_T5_LARGE_V11 = dict(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_decoder_layers=24,
                     num_heads=16)
_T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, num_layers=12, num_decoder_layers=12, num_heads=12)

PRESETS: dict[str, Preset] = {
    "bart-base": Preset("bart", "facebook/bart-base", dict(
        _BART_COMMON, vocab_size=50265, max_position_embeddings=1024, d_model=768, encoder_layers=6,
        decoder_layers=6, encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
        decoder_ffn_dim=3072), 50265 + N_ADDED_TOKENS, _BART_GEN),
    "t5-base": Preset("t5", "t5-base", dict(_T5_COMMON, **_T5_BASE, d_ff=3072), 32000 + N_ADDED_TOKENS, _T5_GEN),
    # Other backbones: the numbers of the released hub configs. Vocabulary: BART-family base + 200; every T5 has
    # the same 32000-piece SentencePiece model, so 32000 + 200 (model spec §7.3).
    "bart-large": Preset("bart", "facebook/bart-large", dict(_BART_COMMON, vocab_size=50265, **_LARGE_BART),
                         50265 + N_ADDED_TOKENS, _BART_GEN),
    "t5-large": Preset("t5", "t5-large", dict(
        _T5_COMMON, vocab_size=32128, d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_decoder_layers=24,
        num_heads=16), 32000 + N_ADDED_TOKENS, _T5_GEN),
    "t5-v1_1-base": Preset("t5", "google/t5-v1_1-base", dict(_T5_V11, **_T5_BASE, d_ff=2048),
                           32000 + N_ADDED_TOKENS, _T5_GEN),
    "flan-t5-base": Preset("t5", "google/flan-t5-base", dict(_T5_V11, **_T5_BASE, d_ff=2048),
                           32000 + N_ADDED_TOKENS, _T5_GEN),
    "t5-small": Preset("t5", "t5-small", dict(
        _T5_COMMON, vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
        num_heads=8), 32000 + N_ADDED_TOKENS, _T5_GEN),
    "flan-t5-small": Preset("t5", "google/flan-t5-small", dict(
        _T5_V11, vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8,
        num_heads=6), 32000 + N_ADDED_TOKENS, _T5_GEN),
    "t5-v1_1-large": Preset("t5", "google/t5-v1_1-large", dict(_T5_V11, **_T5_LARGE_V11), 32000 + N_ADDED_TOKENS,
                            _T5_GEN),
    "flan-t5-large": Preset("t5", "google/flan-t5-large", dict(_T5_V11, **_T5_LARGE_V11), 32000 + N_ADDED_TOKENS,
                            _T5_GEN),
    "mbart-large-50": Preset("bart", "facebook/mbart-large-50", dict(_MBART_COMMON, vocab_size=250054, **_LARGE_BART),
                             250054 + N_ADDED_TOKENS, _MBART_GEN, "mbart"),
    # The golden fixtures' tiny sizes (fixtures README §1.1). T5's 872 "pieces" give the same +72 new rows.
    "tiny-bart": Preset("bart", None, dict(_BART_COMMON, **_TINY_BART), 1000 + N_ADDED_TOKENS, _BART_GEN),
    "tiny-t5": Preset("t5", None, dict(_T5_COMMON, **_TINY_T5), 872 + N_ADDED_TOKENS, _T5_GEN),
    # One tiny variant of each other family, for tests.
    "tiny-t5-v1_1": Preset("t5", None, dict(_T5_V11, **_TINY_T5), 1000 + N_ADDED_TOKENS, _T5_GEN),
    "tiny-mbart": Preset("bart", None, dict(_MBART_COMMON, **_TINY_BART), 1000 + N_ADDED_TOKENS, _MBART_GEN, "mbart"),
}
_ALIASES = {"facebook/bart-base": "bart-base", "t5-base": "t5-base", "google-t5/t5-base": "t5-base",
            "facebook/bart-large": "bart-large", "google-t5/t5-large": "t5-large",
            "google/t5-v1_1-base": "t5-v1_1-base",
            "google/flan-t5-base": "flan-t5-base", "facebook/mbart-large-50": "mbart-large-50",
            "google-t5/t5-small": "t5-small", "google/flan-t5-small": "flan-t5-small",
            "google/t5-v1_1-large": "t5-v1_1-large", "google/flan-t5-large": "flan-t5-large"}


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
    kind, config_cls, cls = FAMILIES[preset.model_type]
    config = config_cls(**{**preset.arch, **(arch or {}), **drop[kind]})
    config._attn_implementation = attn_implementation
    return keep_lm_head_untied(cls(config), fresh=True), kind, dict(preset.generation)


def _dropout_kwargs(p: float) -> dict[str, dict[str, float]]:
    # The official code copies --dropout into every dropout field (model spec §0).
    return {"bart": dict(dropout=p, attention_dropout=p, activation_dropout=p), "t5": dict(dropout_rate=p)}


def _from_pretrained(name_or_path: str, drop: dict, attn_implementation: str):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name_or_path)
    family = check_family(config.model_type, name_or_path)
    kind, _, cls = FAMILIES[family]
    model = keep_lm_head_untied(cls.from_pretrained(name_or_path, attn_implementation=attn_implementation,
                                                    **drop[kind]), fresh=False)
    gen = _GENERATION[family]
    if kind == "bart":
        # 4.2.1 had no forced BOS/EOS processors; EOS forcing in beam search is done by our generate().
        model.config.forced_bos_token_id = None
        model.config.forced_eos_token_id = None
    return model, kind, dict(gen)


def is_untied_t5(lm) -> bool:
    """T5 v1.1 / Flan-T5: released with ``tie_word_embeddings=False`` (transformers 5 keeps that only as
    ``scale_decoder_outputs=False`` and forces the config flag to True)."""
    return lm.config.model_type == "t5" and not getattr(lm.config, "scale_decoder_outputs", True)


def keep_lm_head_untied(lm, fresh: bool):
    """T5 v1.1 / Flan-T5 have their own LM head. transformers 5 ties it to the shared embedding when building from
    a config, and re-ties it on every ``resize_token_embeddings`` (discarding a released head); we drop the
    lm_head entry from this model's tie map so the head stays its own parameter. ``fresh``: a model built from a
    config gets its own head drawn N(0, initializer_factor), the init transformers 4 gave an untied T5 head."""
    if not is_untied_t5(lm):
        return lm
    lm._tied_weights_keys = {k: v for k, v in type(lm)._tied_weights_keys.items() if k != "lm_head.weight"}
    lm.all_tied_weights_keys = lm.get_expanded_tied_weights_keys(all_submodels=True)
    if fresh and lm.lm_head.weight is lm.shared.weight:
        weight = torch.empty_like(lm.shared.weight).normal_(0.0, lm.config.initializer_factor)
        lm.lm_head.weight = torch.nn.Parameter(weight)
    return lm


def check_family(model_type: str, name: str) -> str:
    """``model_type`` if VL-PET supports it, else one error naming the supported families."""
    if model_type not in FAMILIES:
        raise ValueError(f"{name!r} is a {model_type!r} model, an architecture VL-PET does not support here; "
                         f"supported families: {SUPPORTED_FAMILIES}")
    return model_type
