"""Beam search with the decoder's cross-attention keys and values computed once per image, not once per beam.

Stock ``generate`` expands the encoder states to ``batch × num_beams`` rows before the first decoder step, so every
cross-attention layer projects each image's encoder states ``num_beams`` times to the same keys and values
(k/v projections, the VPA included, on B·num_beams·N rows). ``cross_attention_cache`` projects the B unexpanded rows
with the same modules and repeats each row ``num_beams`` times, as ``generate``'s own ``repeat_interleave``
expansion orders them; the cache is marked filled, so the stock attention code reuses it from the first step on.
Beam search reorders the cache after every step, but only among the beams of one image, whose cross-attention rows
are the same: ``BeamCrossAttentionCache`` reorders the self-attention part only.

With sdpa attention the rows are not even repeated (``grouped=True``): the cache holds B rows, and during the
search (``grouped_cross_attention``) each cross-attention module calls ``grouped_beam_sdpa``, which folds an image's
``num_beams`` queries into one attention over its single copy of the keys and values (the ``pack_gqa`` idea of
transformers' sdpa integration, applied to beams instead of heads). Attention is row-independent and the
encoder mask is the same for every beam of an image, so the result is the same attention; the keys and values are
read once per image instead of once per beam (the decode-step cross-attention was ~5 % of beam search on CPU).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward

GROUPED = "vlpet_grouped_beam_sdpa"  # the attention-function name registered below


def _cross_attentions(lm, kind: str) -> list:
    """Every decoder cross-attention module, bottom to top."""
    if kind == "bart":
        return [layer.encoder_attn for layer in lm.get_decoder().layers]
    return [block.layer[1].EncDecAttention for block in lm.get_decoder().block]


def _projections(lm, kind: str):
    """(layer index, key projection, value projection, head size) of every decoder cross-attention."""
    if kind == "bart":
        return [(a.layer_idx, a.k_proj, a.v_proj, a.head_dim) for a in _cross_attentions(lm, kind)]
    return [(a.layer_idx, a.k, a.v, a.key_value_proj_dim) for a in _cross_attentions(lm, kind)]


def _rows_per_image(mask: torch.Tensor | None, groups: int, q_len: int) -> torch.Tensor | None:
    """A (B·groups | 1, h, q_len, S) mask or bias for the folded queries: one row per image (the beams' rows are
    equal), the q_len query rows repeated per beam as the queries are folded."""
    if mask is None:
        return None
    if mask.shape[0] != 1:
        mask = mask[::groups]
    return mask.repeat(1, 1, groups, 1) if mask.shape[2] == q_len and q_len > 1 else mask


def grouped_beam_sdpa(module, query, key, value, attention_mask, position_bias=None, **kwargs):
    """transformers' sdpa attention, with B·g queries against B rows of keys/values folded into B attentions of g
    times the query length; the stock function when the batches match."""
    batch, kv_batch = query.shape[0], key.shape[0]
    if batch == kv_batch or batch % kv_batch:
        return sdpa_attention_forward(module, query, key, value, attention_mask, position_bias=position_bias,
                                      **kwargs)
    groups, (_, heads, q_len, dim) = batch // kv_batch, query.shape
    folded = query.view(kv_batch, groups, heads, q_len, dim).transpose(1, 2).reshape(kv_batch, heads, -1, dim)
    kwargs["is_causal"] = False  # cross-attention
    out, weights = sdpa_attention_forward(module, folded, key, value, _rows_per_image(attention_mask, groups, q_len),
                                          position_bias=_rows_per_image(position_bias, groups, q_len), **kwargs)
    return out.reshape(batch, q_len, heads, -1), weights  # (b, g·q, h, d) → (b·g, q, h, d)


AttentionInterface.register(GROUPED, grouped_beam_sdpa)


def can_group(lm) -> bool:
    """Whether the cross-attention can read unrepeated rows: the backbone runs sdpa attention."""
    return getattr(lm.config, "_attn_implementation", None) == "sdpa"


@contextmanager
def grouped_cross_attention(lm, kind: str):
    """Within the block, the decoder's cross-attention modules use ``grouped_beam_sdpa`` (each through its own
    copy of the config, so the masks and every other module keep sdpa); restored on exit."""
    modules = _cross_attentions(lm, kind)
    saved = [m.config for m in modules]
    try:
        for m in modules:
            m.config = copy.copy(m.config)
            m.config._attn_implementation_internal = GROUPED
        yield
    finally:
        for m, config in zip(modules, saved):
            m.config = config


class BeamCrossAttentionCache(EncoderDecoderCache):
    """An ``EncoderDecoderCache`` whose cross-attention rows are equal within each image's beams."""

    def reorder_cache(self, beam_idx: torch.LongTensor):
        """Beam search picks among one image's beams only, so the cross-attention rows stay as they are."""
        self.self_attention_cache.reorder_cache(beam_idx)


def cross_attention_cache(lm, kind: str, hidden: torch.Tensor, num_beams: int,
                          grouped: bool = False) -> EncoderDecoderCache:
    """A ``BeamCrossAttentionCache`` whose cross-attention part holds every layer's keys and values of the encoder
    states ``hidden`` (B, N, d_model): (B·num_beams, heads, N, d), or (B, heads, N, d) when ``grouped`` (for use
    inside ``grouped_cross_attention``); the self-attention part is empty."""
    cache = BeamCrossAttentionCache(DynamicCache(), DynamicCache())
    shape, repeats = (*hidden.shape[:-1], -1), 1 if grouped else num_beams
    for idx, k_proj, v_proj, head_dim in sorted(_projections(lm, kind), key=lambda t: t[0]):
        keys, values = (proj(hidden).view(*shape, head_dim).transpose(1, 2).repeat_interleave(repeats, dim=0)
                        for proj in (k_proj, v_proj))
        cache.cross_attention_cache.update(keys, values, idx)
        cache.is_updated[idx] = True
    return cache
