"""Other backbones (issue 15): BART, T5 v1.0, T5 v1.1 / Flan-T5 and pre-LN mBART, each on its tiny variant."""

import copy
import json

import pytest
import torch

from vlpet.__main__ import main
from vlpet.config import ModelConfig, PETConfig
from vlpet.losses import sample_mean_loss
from vlpet.models.build import build_model
from vlpet.models.presets import PRESETS, build_lm
from vlpet.models.visual import visual_inputs
from vlpet.flags.published import method_preset
from vlpet.pet import apply_method
from vlpet.pet.hosts import PETMBartEncoderLayer, PETT5LayerFF
from vlpet.pet.trainable import count_parameters
from test_model import _make_identity
from test_trainer import argv, data  # noqa: F401  (data: the trainer tests' synthetic data fixture)

FAMILIES = ["tiny-bart", "tiny-t5", "tiny-t5-v1_1", "tiny-mbart"]
B, L, V, F = 2, 6, 49, 32
SMALL = dict(adapter_dim=16, gate_dim=16, vpa_dim=16)


def _inputs(pad_id: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 900, (B, L), generator=g)
    ids[1, -2:] = pad_id
    return ids, torch.randn(B, V, F, generator=g), torch.zeros(B, V, 4)


def _stock(backbone: str):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, feat_dim=F, attn_implementation="eager"), None)


def _published(backbone: str, gate: str) -> PETConfig:
    """The published VL-PET setting of the backbone's kind (T5: zero-init flags and s = 0.3), at tiny widths."""
    pet = method_preset(f"vl-pet-{gate}", PRESETS[backbone].kind)
    return PETConfig(**{**vars(pet), **SMALL})


@pytest.mark.parametrize("backbone", FAMILIES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_pet_is_transparent_with_visual_tokens_and_generation(backbone, train):
    """Zero adapter, G ≡ 1, zero VPA: the VL model's logits (dropout included) and its beam search are the stock
    model's, bit for bit (eager attention)."""
    stock = _stock(backbone)
    pet = copy.deepcopy(stock)
    apply_method(pet, PETConfig(gate="middley", scale=1.0, **SMALL))
    _make_identity(pet)
    ids, feats, boxes = _inputs(stock.config.pad_token_id)
    rows = PRESETS[backbone].vocab_after_resize  # the +200 VL tokens, in the input embedding and the LM head
    assert stock.token_embedding.num_embeddings == stock.lm.get_output_embeddings().weight.shape[0] == rows
    hidden, mask = stock.encode(ids, feats, boxes)
    assert hidden.shape == (B, L + 36, 64) and mask[:, L:].all()
    labels = ids[:, :4].contiguous()
    logits = []
    for m in (stock, pet):
        m.train(train)
        torch.manual_seed(123)
        logits.append(m(ids, feats, boxes, labels=labels).logits)
    torch.testing.assert_close(logits[0], logits[1], atol=0, rtol=0)
    gens = [m.eval().generate(ids, feats, boxes, num_beams=3, max_length=8) for m in (stock, pet)]
    assert torch.equal(gens[0], gens[1])


def _capture(module, store: list):
    """Record (x, x₂, output) of every call of a PET module."""
    return module.register_forward_hook(lambda mod, args, out: store.append((args[0], args[1], out)))


@pytest.mark.parametrize("backbone", ["tiny-mbart", "tiny-t5-v1_1"])
def test_pre_ln_gate_reads_the_raw_residual_stream(backbone):
    """Pre-LN layers: the gate's x is the residual stream entering the sublayer (not its LayerNorm output), and the
    sublayer returns x + pet(x, x₂): attention x = the layer input, FFN x = that plus the attention branch."""
    model = build_model(ModelConfig(backbone=backbone, feat_dim=F), _published(backbone, "large")).eval()
    encoder = model.lm.get_encoder()
    layer = encoder.layers[1] if backbone == "tiny-mbart" else encoder.block[1]
    pets = [layer.attn_pet, layer.ffn_pet] if backbone == "tiny-mbart" else [s.pet for s in layer.layer]
    calls, inputs = [], []
    hooks = [_capture(p, calls) for p in pets]
    hooks.append(layer.register_forward_pre_hook(lambda mod, args: inputs.append(args[0])))
    outputs = []
    hooks.append(layer.register_forward_hook(lambda mod, args, out: outputs.append(out)))
    ids, feats, boxes = _inputs(model.config.pad_token_id)
    with torch.no_grad():
        model.encode(ids, feats, boxes)
    for h in hooks:
        h.remove()
    (x_attn, _, y_attn), (x_ffn, _, y_ffn) = calls
    out = outputs[0] if backbone == "tiny-mbart" else outputs[0][0]
    assert torch.equal(x_attn, inputs[0])
    norm = layer.self_attn_layer_norm if backbone == "tiny-mbart" else layer.layer[0].layer_norm
    assert not torch.allclose(x_attn, norm(x_attn))
    torch.testing.assert_close(x_ffn, x_attn + y_attn, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, x_ffn + y_ffn, atol=1e-6, rtol=0)


def test_mbart_hosts_and_final_encoder_layer_norm():
    model = build_model(ModelConfig(backbone="tiny-mbart", feat_dim=F), _published("tiny-mbart", "small"))
    encoder = model.lm.get_encoder()
    assert all(type(layer) is PETMBartEncoderLayer for layer in encoder.layers)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "lm.model.encoder.layer_norm.weight" in trainable  # the final encoder LN is an encoder LayerNorm
    assert "lm.model.encoder.layernorm_embedding.weight" in trainable
    assert not any(".decoder." in n and "norm" in n for n in trainable)


def test_t5_v1_1_gated_ffn_host_and_untied_lm_head():
    """Gated-GELU FFN (wi_0, wi_1, wo) behind the same FFN host, stock keys kept and frozen; an untied LM head of the
    resized vocabulary, frozen, distinct from the shared embedding the object-order rows come from."""
    stock = _stock("tiny-t5-v1_1")
    model = copy.deepcopy(stock)
    apply_method(model, _published("tiny-t5-v1_1", "middlex"))
    ff = model.lm.encoder.block[0].layer[1]
    assert type(ff) is PETT5LayerFF and type(ff.DenseReluDense).__name__ == "T5DenseGatedActDense"
    assert set(stock.state_dict()) <= set(model.state_dict())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"lm.encoder.block.0.layer.1.DenseReluDense.wi_0.weight", "lm.lm_head.weight",
            "lm.encoder.block.0.layer.1.DenseReluDense.wi_1.weight"} <= frozen
    lm = model.lm
    assert lm.lm_head.weight is not lm.shared.weight and lm.lm_head.weight.shape == lm.shared.weight.shape == (1200, 64)
    assert lm.encoder.embed_tokens is lm.shared and lm.decoder.embed_tokens is lm.shared
    names = dict(stock.named_parameters())
    assert count_parameters(stock)[1] == sum(p.numel() for p in names.values()) and "lm.lm_head.weight" in names
    ids, feats, boxes = _inputs(0)
    model.eval()
    vis_inputs = visual_inputs(feats, boxes, model.n_boxes, model.downsample)

    def visual_tokens():
        return model.visual_embedding(*vis_inputs, model.token_embedding)

    with torch.no_grad():
        tokens, hidden = visual_tokens(), model.encode(ids, feats, boxes)[0]
        lm.lm_head.weight[-1].zero_()  # the LM head row of <vis_extra_id_0> is not the object-order row
        assert torch.equal(model.encode(ids, feats, boxes)[0], hidden)
        lm.shared.weight[-1].add_(1.0)  # object 0 reads shared row V_tok − 1 = <vis_extra_id_0>
        changed = (visual_tokens() != tokens).any(-1)
        assert changed[:, 0].all() and not changed[:, 1:].any()
        logits = model(ids, feats, boxes, decoder_input_ids=torch.zeros(B, 1, dtype=torch.long)).logits
        assert torch.all(logits[..., -1] == 0)  # the untied head, no d^-0.5 rescaling of a zero row


@pytest.mark.parametrize("backbone", FAMILIES)
@pytest.mark.parametrize("gate", ["small", "middlex", "middley", "large"])
def test_every_gate_trains_end_to_end(backbone, gate):
    """A few AdamW steps on one batch: the loss goes down, nothing frozen moves, every PET parameter does."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, feat_dim=F, dropout=0.0), _published(backbone, gate))
    ids, feats, boxes = _inputs(model.config.pad_token_id)
    labels = ids[:, :4].contiguous()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(4):
        loss = sample_mean_loss(model(ids, feats, boxes, labels=labels).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved <= p.requires_grad, name
        if "_pet." in name or ".pet." in name or ".vpa." in name:
            assert moved, name


@pytest.mark.parametrize("preset", ["tiny-mbart", "tiny-t5-v1_1"])
def test_pretrained_weights_from_a_local_directory(tmp_path, preset):
    """from_pretrained keeps the family (mBART class, T5 v1.1's own LM head, also through the resize)."""
    lm, _, _ = build_lm(preset, pretrained=False)
    lm.save_pretrained(tmp_path)
    model = build_model(ModelConfig(backbone=str(tmp_path), pretrained=True, feat_dim=F, vocab_size=1300),
                        _published(preset, "small"))
    assert type(model.lm) is type(lm)
    ref, got = lm.get_output_embeddings().weight, model.lm.get_output_embeddings().weight
    assert got.shape[0] == 1300 and torch.equal(got[: ref.shape[0]], ref)
    assert (got is model.token_embedding.weight) == (preset == "tiny-mbart")


def test_unsupported_architecture_is_one_clear_error(tmp_path):
    from transformers import BertConfig

    bert = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    bert.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"'bert' model.*supported families: BART \(bart\), pre-LN mBART"):
        build_model(ModelConfig(backbone=str(tmp_path), pretrained=True), None)


PARAM_PRESETS = ["bart-large", "mbart-large-50", "t5-small", "t5-large", "t5-v1_1-base", "flan-t5-small",
                 "flan-t5-base", "t5-v1_1-large", "flan-t5-large"]


@pytest.mark.parametrize("backbone", PARAM_PRESETS)
def test_params_for_every_preset(capsys, backbone):
    """Counts from the built structure with r tied to d; the closed form of model spec §10 at the preset's sizes."""
    assert main(["params", "--backbone", backbone, "--method", "vl-pet-large"]) == 0
    line, js = capsys.readouterr().out.strip().splitlines()
    got = json.loads(js)
    assert line.startswith("Trainable param percentage: ")
    arch = PRESETS[backbone].arch
    d, kind = arch["d_model"], PRESETS[backbone].kind
    n_enc = arch.get("encoder_layers") or arch["num_layers"]
    r = (96 if kind == "bart" else 192) * d // 768
    r_d = 96 * d // 768
    pet = 2 * 2 * n_enc * (2 * d * r + r + d) + n_enc * (2 * d * r_d + r_d + d)  # adapters + large gates + VPA
    n_norm_params = 2 if kind == "bart" else 1
    ln = (2 * n_enc + 1 + (backbone == "mbart-large-50")) * n_norm_params * d  # + mBART's final encoder LN
    vis = (2048 * d + d) + (5 * d + d) + 2 * n_norm_params * d + 2 * d
    assert got["trainable"] == pet + ln + vis


def test_params_closed_form_totals(capsys):
    """Totals: the released models' own parameter counts plus the 200 (BART) / 72 (T5) added rows, VIS and PET."""
    base = {"bart-large": 406_291_456, "mbart-large-50": 610_879_488, "t5-small": 60_506_624, "t5-large": 737_668_096,
            "flan-t5-small": 76_961_152, "flan-t5-base": 247_577_856, "flan-t5-large": 783_150_080}
    for backbone, count in base.items():
        main(["params", "--backbone", backbone, "--method", "vl-pet-small"])
        got = json.loads(capsys.readouterr().out.strip().splitlines()[1])
        main(["params", "--backbone", backbone, "--method", "full_finetuning"])
        full = json.loads(capsys.readouterr().out.strip().splitlines()[1])
        d = PRESETS[backbone].arch["d_model"]
        untied = "flan" in backbone  # T5 v1.1: the LM head gets the 72 new rows too
        added = 200 if PRESETS[backbone].kind == "bart" else 72 * (2 if untied else 1)
        norm = 2 if PRESETS[backbone].kind == "bart" else 1
        vis = (2048 * d + d) + (5 * d + d) + 2 * norm * d + 2 * d
        assert full["total"] == count + added * d + vis, backbone
        assert got["total"] > full["total"]


@pytest.mark.parametrize("backbone,style", [("tiny-mbart", "bart"), ("tiny-t5-v1_1", "t5")])
def test_trainer_runs_on_the_other_families(data, tmp_path, capsys, backbone, style):  # noqa: F811
    """python -m vlpet train end to end (published flags, 2 tasks) on the tiny mBART and T5 v1.1."""
    from vlpet.commands.train import main as train_main

    flags = argv(data, tmp_path / "run", f"tiny-{style}", "middlex", extra="--tasks vqa,nlvr")
    flags[flags.index("--backbone") + 1] = backbone
    assert train_main(flags) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(final["test"]) == {"vqa", "nlvr"}
    assert (tmp_path / "run" / "LAST" / "pet_weights.safetensors").is_file()
