"""Behaviour of the injected VL-PET modules on tiny random models (model spec §2-§7)."""

import copy

import pytest
import torch

from vlpet.config import ModelConfig, PETConfig, from_dict, to_dict
from vlpet.models.build import build_model
from vlpet.pet.gates import GATES
from vlpet.pet.sublayer import SublayerPET

B, L, V, F = 2, 6, 49, 32


def _inputs(pad_id: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 900, (B, L), generator=g)
    ids[1, -2:] = pad_id
    return ids, torch.randn(B, V, F, generator=g), torch.zeros(B, V, 4)


def _model(backbone: str, **pet) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, feat_dim=F), PETConfig(**pet) if pet is not None else None)


def _make_identity(model):
    """Zero every adapter up-projection and VPA, and make G ≡ 1 (middleY with g = 0)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SublayerPET):
                m.adapter.zero_init_up()
                m.gate.zero_init()
        for name, p in model.named_parameters():
            if ".vpa.up." in name:
                p.zero_()


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_identity_pet_is_transparent(backbone, train, attn):
    """A zero adapter with G ≡ 1 and a zero VPA leave the stock model's output unchanged, dropout included.

    Bit-exact with eager attention; SDPA's CPU kernel may round differently (≤ 2e-6 seen on T5)."""
    torch.manual_seed(0)
    stock = build_model(ModelConfig(backbone=backbone, feat_dim=F, attn_implementation=attn), None)
    pet = copy.deepcopy(stock)
    from vlpet.pet import apply_method

    apply_method(pet, PETConfig(gate="middley", scale=1.0))
    _make_identity(pet)
    ids, _, _ = _inputs(stock.config.pad_token_id)
    labels = ids[:, :4].contiguous()
    for m in (stock, pet):
        m.train(train)
    outs = []
    for m in (stock, pet):
        torch.manual_seed(123)  # same dropout masks
        outs.append(m.lm(input_ids=ids, labels=labels).logits)
    torch.testing.assert_close(outs[0], outs[1], atol=0 if attn == "eager" else 1e-5, rtol=0)


def test_gate_shapes():
    d, n = 16, 7
    x, y = torch.randn(B, n, d), torch.randn(B, n, d)
    shapes = {"small": (B, 1, 1), "middlex": (B, n, 1), "middley": (d,), "large": (B, n, d)}
    for kind, shape in shapes.items():
        gate = GATES[kind](d_model=d, gate_dim=4)
        assert tuple(gate.weights(x, y).shape) == shape, kind
        assert gate(x, y).shape == y.shape


def test_small_gate_mean_includes_every_position():
    """G_small averages over all N positions, padding included (spec §9.1): more padding changes G."""
    gate = GATES["small"](d_model=8, gate_dim=1)
    x, y = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    g5 = gate.weights(x, y)
    g6 = gate.weights(torch.cat([x, torch.zeros(1, 1, 8)], 1), torch.cat([y, torch.zeros(1, 1, 8)], 1))
    assert not torch.allclose(g5, g6)


def test_t5_zero_init_sublayer_is_half_scaled_x2():
    """T5 zero-init flags: Δ = 0 and G = σ(0) = 0.5, so each encoder sublayer yields s·0.5·x₂ (spec §5)."""
    model = _model("tiny-t5", gate="large", scale=0.3, zero_init_adapter_up=True, zero_init_gate=True,
                   zero_init_vpa_up=True, adapter_dim=16, gate_dim=16, vpa_dim=16)
    pet = model.lm.encoder.block[0].layer[0].pet
    x, x2 = torch.randn(B, 5, 64), torch.randn(B, 5, 64)
    torch.testing.assert_close(pet(x, x2), 0.3 * 0.5 * x2)
    for name, p in model.named_parameters():
        if ".vpa.up." in name:
            assert torch.count_nonzero(p) == 0


def test_bart_init_is_normal_002_and_not_identity():
    model = _model("tiny-bart", gate="large", adapter_dim=32, gate_dim=32, vpa_dim=32)
    pet = model.lm.model.encoder.layers[0].attn_pet
    w = pet.adapter.down.weight
    assert abs(w.std().item() - 0.02) < 0.003 and torch.count_nonzero(pet.adapter.down.bias) == 0
    assert torch.count_nonzero(pet.adapter.up.weight) > 0  # BART has no zero-init: Δ ≠ 0 at step 0


def test_trainable_set_is_pet_encoder_ln_and_visual():
    model = _model("tiny-bart", gate="small", adapter_dim=16, gate_dim=16, vpa_dim=16)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("visual_embedding.") for n in names)
    assert "lm.model.encoder.layernorm_embedding.weight" in names
    assert not any(".decoder." in n and "layer_norm" in n for n in names)
    assert not any(n.startswith("lm.model.shared") for n in names)
    assert all(n.startswith("visual_embedding.") or "_pet." in n or ".vpa." in n or "layer_norm" in n
               or "layernorm" in n for n in names)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_generate_cache_matches_no_cache(backbone):
    model = _model(backbone, gate="large", adapter_dim=16, gate_dim=16, vpa_dim=16).eval()
    ids, feats, boxes = _inputs(model.config.pad_token_id)
    a = model.generate(ids, feats, boxes, num_beams=5)
    b = model.generate(ids, feats, boxes, num_beams=5, use_cache=False)
    assert torch.equal(a, b)
    assert a.shape[1] <= 20 and torch.all(a[:, 0] == model.config.decoder_start_token_id)


def test_visual_tokens_and_mask():
    model = _model("tiny-bart", gate="middlex", adapter_dim=16, gate_dim=16, vpa_dim=16).eval()
    ids, feats, boxes = _inputs(model.config.pad_token_id)
    hidden, mask = model.encode(ids, feats, boxes)
    assert hidden.shape == (B, L + 36, 64) and mask[:, L:].all() and mask[1, L - 2:L].sum() == 0
    two = torch.stack([feats, feats.flip(1)], dim=1)
    hidden2, mask2 = model.encode(ids, two, torch.zeros(B, 2, V, 4))
    assert hidden2.shape == (B, L + 72, 64)


def test_config_round_trip_and_validation():
    cfg = PETConfig(gate="middleY", adapter_dim=32, num_heads=2)
    assert cfg.gate == "middley" and from_dict(PETConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="divisible"):
        PETConfig(adapter_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown gate"):
        PETConfig(gate="huge")
    with pytest.raises(ValueError, match="unknown PETConfig field"):
        from_dict(PETConfig, {"gate": "small", "rank": 3})


@pytest.mark.parametrize("preset", ["tiny-bart", "tiny-t5"])
def test_pretrained_weights_from_a_local_directory(tmp_path, preset):
    """``pretrained=True`` loads the backbone with from_pretrained (here from a local directory, as offline users do)."""
    from vlpet.models.presets import build_lm

    lm, _, _ = build_lm(preset, pretrained=False)
    lm.save_pretrained(tmp_path)
    model = build_model(ModelConfig(backbone=str(tmp_path), pretrained=True, feat_dim=F, vocab_size=1200),
                        PETConfig(gate="small", adapter_dim=16, gate_dim=16, vpa_dim=16))
    ref = lm.get_input_embeddings().weight
    got = model.token_embedding.weight
    assert got.shape[0] == 1200 and torch.equal(got[: ref.shape[0]], ref)
    assert model.kind == preset.split("-")[1]


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backbone preset"):
        build_model(ModelConfig(backbone="gpt-tiny"), None)
