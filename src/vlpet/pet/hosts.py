"""Hook points in the stock layers: class-swapped encoder layers whose forward calls an attached PET module.

Only the forward changes; every stock submodule and state-dict key stays. The attached module is called as
``pet(x, x2)`` with x the sublayer input the gate reads and x2 the sublayer output (before dropout):
  BART (post-LN): x = x₁, the layer / attention-LN output;
  T5, mBART (pre-LN): x = the raw residual stream entering the sublayer (before the sublayer's own LayerNorm,
  the tensor the sublayer output is added back to), as the official T5 code reads it (model spec §3).
The host class is chosen by the stock layer's class (``HOSTS``), so T5 v1.0 (``T5DenseActDense``) and v1.1 /
Flan-T5 (``T5DenseGatedActDense``) share one FFN host: it calls the stock ``DenseReluDense`` whatever it holds.
Dropout RNG order is the stock one, so an identity PET reproduces the stock model exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.models.bart.modeling_bart import BartDecoderLayer, BartEncoderLayer
from transformers.models.mbart.modeling_mbart import MBartDecoderLayer, MBartEncoderLayer
from transformers.models.t5.modeling_t5 import T5LayerCrossAttention, T5LayerFF, T5LayerSelfAttention

from ..models.hf_compat import cache_kwargs

ENCODER_SITES = ("attn", "ffn")
DECODER_SITES = ("self", "cross", "ffn")


class PETBartEncoderLayer(BartEncoderLayer):
    attn_pet: nn.Module | None
    ffn_pet: nn.Module | None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        x1 = hidden_states
        x2, _ = self.self_attn(x1, attention_mask=attention_mask, **kwargs)
        if self.attn_pet is not None:
            x2 = self.attn_pet(x1, x2)
        h = self.self_attn_layer_norm(x1 + F.dropout(x2, p=self.dropout, training=self.training))
        x2 = F.dropout(self.activation_fn(self.fc1(h)), p=self.activation_dropout, training=self.training)
        x2 = self.fc2(x2)
        if self.ffn_pet is not None:
            x2 = self.ffn_pet(h, x2)
        out = self.final_layer_norm(h + F.dropout(x2, p=self.dropout, training=self.training))
        if out.dtype == torch.float16 and not torch.isfinite(out).all():
            out = _clamp_fp16(out)
        return out


def _clamp_fp16(out: torch.Tensor) -> torch.Tensor:
    """The stock fp16 guard of the BART-family encoder layers."""
    big = torch.finfo(out.dtype).max - 1000
    return out.clamp(-big, big)


class PETBartDecoderLayer(BartDecoderLayer):
    """Decoder layer with optional PET modules after self-attention, cross-attention and the FFN."""

    self_pet: nn.Module | None
    cross_pet: nn.Module | None
    ffn_pet: nn.Module | None

    def _sublayer(self, pet, x, x2, norm):
        if pet is not None:
            x2 = pet(x, x2)
        return norm(x + F.dropout(x2, p=self.dropout, training=self.training))

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                cache=None, use_cache=True, **kwargs):
        cache = cache_kwargs(cache, kwargs)  # the stock decoder passes past_key_values= before transformers 5.24
        x2, _ = self.self_attn(hidden_states, attention_mask=attention_mask, **cache, **kwargs)
        h = self._sublayer(self.self_pet, hidden_states, x2, self.self_attn_layer_norm)
        if encoder_hidden_states is not None:
            x2, _ = self.encoder_attn(h, key_value_states=encoder_hidden_states,
                                      attention_mask=encoder_attention_mask, **cache, **kwargs)
            h = self._sublayer(self.cross_pet, h, x2, self.encoder_attn_layer_norm)
        x2 = F.dropout(self.activation_fn(self.fc1(h)), p=self.activation_dropout, training=self.training)
        return self._sublayer(self.ffn_pet, h, self.fc2(x2), self.final_layer_norm)


class PETMBartEncoderLayer(MBartEncoderLayer):
    """Pre-LN: h = x + Drop(pet(x, SelfAttn(LN(x)))); out = h + Drop(pet(h, FFN(LN(h))))."""

    attn_pet: nn.Module | None
    ffn_pet: nn.Module | None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        x2, _ = self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask=attention_mask, **kwargs)
        h = _pre_ln_residual(self, self.attn_pet, hidden_states, x2)
        out = _pre_ln_residual(self, self.ffn_pet, h, _pre_ln_ffn(self, h))
        return _clamp_fp16(out) if out.dtype == torch.float16 else out


class PETMBartDecoderLayer(MBartDecoderLayer):
    """Pre-LN decoder layer with optional PET modules on self-attention, cross-attention and the FFN."""

    self_pet: nn.Module | None
    cross_pet: nn.Module | None
    ffn_pet: nn.Module | None

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                cache=None, use_cache=True, **kwargs):
        cache = cache_kwargs(cache, kwargs)
        x2, _ = self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask=attention_mask, **cache,
                               **kwargs)
        h = _pre_ln_residual(self, self.self_pet, hidden_states, x2)
        if encoder_hidden_states is not None:
            x2, _ = self.encoder_attn(self.encoder_attn_layer_norm(h), key_value_states=encoder_hidden_states,
                                      attention_mask=encoder_attention_mask, **cache, **kwargs)
            h = _pre_ln_residual(self, self.cross_pet, h, x2)
        return _pre_ln_residual(self, self.ffn_pet, h, _pre_ln_ffn(self, h))


def _pre_ln_ffn(layer, h: torch.Tensor) -> torch.Tensor:
    x2 = layer.activation_fn(layer.fc1(layer.final_layer_norm(h)))
    return layer.fc2(F.dropout(x2, p=layer.activation_dropout, training=layer.training))


def _pre_ln_residual(layer, pet, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """x + Drop(pet(x, x₂)): the gate reads the raw residual stream x (pre-LN)."""
    if pet is not None:
        x2 = pet(x, x2)
    return x + F.dropout(x2, p=layer.dropout, training=layer.training)


class PETT5LayerSelfAttention(T5LayerSelfAttention):
    pet: nn.Module

    def forward(self, hidden_states, attention_mask=None, position_bias=None, cache=None, **kwargs):
        out, position_bias, weights = self.SelfAttention(
            self.layer_norm(hidden_states), mask=attention_mask, position_bias=position_bias,
            **cache_kwargs(cache, kwargs), **kwargs)
        return hidden_states + self.dropout(self.pet(hidden_states, out)), position_bias, weights


class PETT5LayerCrossAttention(T5LayerCrossAttention):
    pet: nn.Module

    def forward(self, hidden_states, key_value_states, attention_mask=None, position_bias=None, cache=None, **kwargs):
        out, position_bias, weights = self.EncDecAttention(
            self.layer_norm(hidden_states), mask=attention_mask, key_value_states=key_value_states,
            position_bias=position_bias, **cache_kwargs(cache, kwargs), **kwargs)
        return hidden_states + self.dropout(self.pet(hidden_states, out)), position_bias, weights


class PETT5LayerFF(T5LayerFF):
    pet: nn.Module

    def forward(self, hidden_states):
        out = self.DenseReluDense(self.layer_norm(hidden_states))
        return hidden_states + self.dropout(self.pet(hidden_states, out))


# Stock layer class -> its PET host (BART family: whole layers; T5: sublayers).
HOSTS: dict[type, type] = {
    BartEncoderLayer: PETBartEncoderLayer, BartDecoderLayer: PETBartDecoderLayer,
    MBartEncoderLayer: PETMBartEncoderLayer, MBartDecoderLayer: PETMBartDecoderLayer,
    T5LayerSelfAttention: PETT5LayerSelfAttention, T5LayerCrossAttention: PETT5LayerCrossAttention,
    T5LayerFF: PETT5LayerFF,
}


def host_class(layer: nn.Module) -> type:
    """The PET host for a stock (or already hosted) layer; one clear error for an architecture without one."""
    if type(layer) in HOSTS.values():
        return type(layer)
    try:
        return HOSTS[type(layer)]
    except KeyError:
        raise ValueError(f"no PET host for {type(layer).__name__}: VL-PET hooks into the BART, mBART and T5 "
                         "(v1.0, v1.1 / Flan-T5) layers only") from None


def inject_encoder(model, make: Callable[[str], nn.Module | None]) -> list[str]:
    """Attach ``make(site)`` (site ∈ ENCODER_SITES; None leaves the sublayer stock) to every encoder layer."""
    return _inject(model, model.lm.get_encoder(), make, ENCODER_SITES)


def inject_decoder(model, make: Callable[[str], nn.Module | None]) -> list[str]:
    """Attach ``make(site)`` (site ∈ DECODER_SITES; None leaves the sublayer stock) to every decoder layer."""
    return _inject(model, model.lm.get_decoder(), make, DECODER_SITES)


def _inject(model, stack, make, sites) -> list[str]:
    """Swap each layer's class to its PET host and attach the modules; return the attached modules' names."""
    prefix = _qualname(model, stack)
    names = []
    if model.kind == "bart":
        for i, layer in enumerate(stack.layers):
            layer.__class__ = host_class(layer)
            for site in sites:
                setattr(layer, f"{site}_pet", make(site))
                if getattr(layer, f"{site}_pet") is not None:
                    names.append(f"{prefix}.layers.{i}.{site}_pet")
        return names
    for i, block in enumerate(stack.block):
        for j, site in enumerate(sites):
            pet = make(site)
            if pet is not None:
                block.layer[j].__class__ = host_class(block.layer[j])
                block.layer[j].pet = pet
                names.append(f"{prefix}.block.{i}.layer.{j}.pet")
    return names


def cross_attention_value_projections(model) -> dict[str, nn.Linear]:
    """The decoder cross-attention value projections, by qualified name."""
    decoder = model.lm.get_decoder()
    prefix = _qualname(model, decoder)
    if model.kind == "bart":
        return {f"{prefix}.layers.{i}.encoder_attn.v_proj": layer.encoder_attn.v_proj
                for i, layer in enumerate(decoder.layers)}
    return {f"{prefix}.block.{i}.layer.1.EncDecAttention.v": block.layer[1].EncDecAttention.v
            for i, block in enumerate(decoder.block)}


def _qualname(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise ValueError("module is not part of the model")
