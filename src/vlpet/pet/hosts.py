"""Hook points in the stock layers: class-swapped encoder layers whose forward calls an attached PET module.

Only the forward changes; every stock submodule and state-dict key stays. The attached module is called as
``pet(x, x2)`` with x the sublayer input the gate reads and x2 the sublayer output (before dropout):
  BART (post-LN): x = x₁, the layer / attention-LN output;  T5 (pre-LN): x = the raw residual stream.
Dropout RNG order is the stock one, so an identity PET reproduces the stock model exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.models.bart.modeling_bart import BartEncoderLayer
from transformers.models.t5.modeling_t5 import T5LayerFF, T5LayerSelfAttention

SITES = ("attn", "ffn")


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
            big = torch.finfo(out.dtype).max - 1000
            out = out.clamp(-big, big)
        return out


class PETT5LayerSelfAttention(T5LayerSelfAttention):
    pet: nn.Module

    def forward(self, hidden_states, attention_mask=None, position_bias=None, cache=None, **kwargs):
        out, position_bias, weights = self.SelfAttention(
            self.layer_norm(hidden_states), mask=attention_mask, position_bias=position_bias, cache=cache, **kwargs)
        return hidden_states + self.dropout(self.pet(hidden_states, out)), position_bias, weights


class PETT5LayerFF(T5LayerFF):
    pet: nn.Module

    def forward(self, hidden_states):
        out = self.DenseReluDense(self.layer_norm(hidden_states))
        return hidden_states + self.dropout(self.pet(hidden_states, out))


def inject_encoder(model, make: Callable[[str], nn.Module]) -> list[str]:
    """Attach ``make(site)`` (site ∈ SITES) to both sublayers of every encoder layer of a VLModel.

    Returns the qualified names of the attached modules.
    """
    encoder = model.lm.get_encoder()
    prefix = _qualname(model, encoder)
    names = []
    if model.kind == "bart":
        for i, layer in enumerate(encoder.layers):
            layer.__class__ = PETBartEncoderLayer
            layer.attn_pet, layer.ffn_pet = make("attn"), make("ffn")
            names += [f"{prefix}.layers.{i}.attn_pet", f"{prefix}.layers.{i}.ffn_pet"]
    else:
        for i, block in enumerate(encoder.block):
            block.layer[0].__class__ = PETT5LayerSelfAttention
            block.layer[-1].__class__ = PETT5LayerFF
            block.layer[0].pet, block.layer[-1].pet = make("attn"), make("ffn")
            n = len(block.layer) - 1
            names += [f"{prefix}.block.{i}.layer.0.pet", f"{prefix}.block.{i}.layer.{n}.pet"]
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
