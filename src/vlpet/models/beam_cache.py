"""Beam search with the decoder's cross-attention keys and values computed once per image, not once per beam.

Stock ``generate`` expands the encoder states to ``batch × num_beams`` rows before the first decoder step, so every
cross-attention layer projects each image's encoder states ``num_beams`` times to the same keys and values
(k/v projections, the VPA included, on B·num_beams·N rows). ``cross_attention_cache`` projects the B unexpanded rows
with the same modules and repeats each row ``num_beams`` times, as ``generate``'s own ``repeat_interleave``
expansion orders them; the cache is marked filled, so the stock attention code reuses it from the first step on.
Beam search reorders the cache after every step, but only among the beams of one image, whose cross-attention rows
are the same: ``BeamCrossAttentionCache`` reorders the self-attention part only.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache


def _projections(lm, kind: str):
    """(layer index, key projection, value projection, head size) of every decoder cross-attention."""
    if kind == "bart":
        return [(layer.encoder_attn.layer_idx, layer.encoder_attn.k_proj, layer.encoder_attn.v_proj,
                 layer.encoder_attn.head_dim) for layer in lm.get_decoder().layers]
    return [(block.layer[1].EncDecAttention.layer_idx, block.layer[1].EncDecAttention.k,
             block.layer[1].EncDecAttention.v, block.layer[1].EncDecAttention.key_value_proj_dim)
            for block in lm.get_decoder().block]


class BeamCrossAttentionCache(EncoderDecoderCache):
    """An ``EncoderDecoderCache`` whose cross-attention rows are equal within each image's beams."""

    def reorder_cache(self, beam_idx: torch.LongTensor):
        """Beam search picks among one image's beams only, so the cross-attention rows stay as they are."""
        self.self_attention_cache.reorder_cache(beam_idx)


def cross_attention_cache(lm, kind: str, hidden: torch.Tensor, num_beams: int) -> EncoderDecoderCache:
    """A ``BeamCrossAttentionCache`` whose cross-attention part holds every layer's (B·num_beams, heads, N, d)
    keys and values of the encoder states ``hidden`` (B, N, d_model); the self-attention part is empty."""
    cache = BeamCrossAttentionCache(DynamicCache(), DynamicCache())
    shape = (*hidden.shape[:-1], -1)
    for idx, k_proj, v_proj, head_dim in sorted(_projections(lm, kind), key=lambda t: t[0]):
        keys, values = (proj(hidden).view(*shape, head_dim).transpose(1, 2).repeat_interleave(num_beams, dim=0)
                        for proj in (k_proj, v_proj))
        cache.cross_attention_cache.update(keys, values, idx)
        cache.is_updated[idx] = True
    return cache
