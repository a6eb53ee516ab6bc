"""Beam search with cross-attention keys/values computed once per image (issue 12): the same sequences and scores
as the stock per-beam computation, and the projections see B rows instead of B x num_beams."""

from __future__ import annotations

import pytest
import torch

from vlpet.config import ModelConfig
from vlpet.models.build import build_model
from vlpet.flags.published import method_preset


@pytest.mark.parametrize("backbone,kind", [("tiny-bart", "bart"), ("tiny-t5", "t5")])
def test_once_per_image_cross_attention_equals_stock_beam_search(backbone, kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, feat_dim=32), method_preset("vl-pet-large", kind)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # non-zero PET and VPA, so the value projection's adapter matters
                p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (3, 7), generator=g)
    ids[1, 5:] = model.config.pad_token_id
    feats, boxes = torch.randn(3, 49, 32, generator=g), torch.zeros(3, 49, 4)
    decoder = model.lm.get_decoder()
    first = decoder.layers[0].encoder_attn.k_proj if kind == "bart" else decoder.block[0].layer[1].EncDecAttention.k
    rows = []
    first.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    kw = dict(num_beams=5, output_scores=True, return_dict_in_generate=True)
    ours = model.generate(ids, feats, boxes, **kw)
    assert rows == [3]
    stock = model.generate(ids, feats, boxes, cache=None, **kw)  # an explicit cache argument: the stock path
    assert rows == [3, 15]
    assert torch.equal(ours.sequences, stock.sequences)
    torch.testing.assert_close(ours.sequences_scores, stock.sequences_scores, atol=1e-6, rtol=0)


@pytest.mark.parametrize("backbone,kind", [("tiny-bart", "bart"), ("tiny-t5", "t5")])
def test_grouped_cross_attention_reads_one_row_per_image_and_restores_the_configs(backbone, kind, monkeypatch):
    """With sdpa, the beams' queries are folded onto one copy of each image's keys/values; with eager attention
    the rows stay repeated per beam. Both give the stock search; the modules' configs come back."""
    from vlpet.models import beam_cache

    seen = []
    real = beam_cache.grouped_beam_sdpa

    def spy(module, query, key, *args, **kwargs):
        seen.append((query.shape[0], key.shape[0]))
        return real(module, query, key, *args, **kwargs)

    monkeypatch.setitem(beam_cache.AttentionInterface._global_mapping, beam_cache.GROUPED, spy)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 100, (2, 6), generator=g)
    feats = torch.randn(2, 49, 32, generator=g)
    for impl, grouped_calls in (("sdpa", True), ("eager", False)):
        torch.manual_seed(0)
        model = build_model(ModelConfig(backbone=backbone, feat_dim=32, attn_implementation=impl),
                            method_preset("vl-pet-large", kind)).eval()
        ids[0, 4:] = model.config.pad_token_id
        configs = [m.config for m in beam_cache._cross_attentions(model.lm, kind)]
        seen.clear()
        with torch.no_grad():
            ours = model.generate(ids, feats, torch.zeros(2, 49, 4), num_beams=4, max_length=6)
            stock = model.generate(ids, feats, torch.zeros(2, 49, 4), num_beams=4, max_length=6, cache=None)
        assert torch.equal(ours, stock)
        assert [m.config for m in beam_cache._cross_attentions(model.lm, kind)] == configs
        assert all(c._attn_implementation == impl for c in configs)
        if grouped_calls:  # every cross-attention call: 2 images × 4 beams of queries against 2 rows
            assert seen and set(seen) == {(8, 2)}
        else:
            assert not seen
