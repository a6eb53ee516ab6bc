"""Baselines and Table 9 (issue: baselines): Params %, LoRA against peft, and a few real training steps each."""


import pytest
import torch

from vlpet.__main__ import main
from vlpet.config import ModelConfig, PETConfig
from vlpet.models.build import build_model

PARAMS = [  # method, gate, extra, printed % (paper Table 2 / Table 9; VL-Adapter paper for video)
    ("full_finetuning", "none", [], "100.00"), ("bitfit", "none", [], "1.21"), ("single_prompt", "none", [], "2.00"),
    ("single_lora", "none", [], "5.93"), ("single_compacter", "none", [], "2.70"), ("hyperformer", "none", [], "5.79"),
    ("single_adapter", "none", [], "4.18"), ("single_adapter", "none", ["--video"], "3.39"),
    ("single_compacter", "small", [], "2.08"), ("single_compacter", "middlex", [], "2.07"),
    ("single_compacter", "middley", [], "2.07"), ("single_compacter", "large", [], "3.28"),
    ("single_adapter", "small", [], "2.98"), ("single_adapter", "middlex", [], "2.98"),
    ("single_adapter", "middley", [], "2.98"), ("single_adapter", "large", [], "4.16"),
]


@pytest.mark.parametrize("method,gate,extra,pct", PARAMS)
def test_params_percent(capsys, method, gate, extra, pct):
    assert main(["params", "--method", method, "--vlpet_gate", gate, *extra]) == 0
    assert capsys.readouterr().out.startswith(f"Trainable param percentage: {pct}%")


def test_gate_on_a_method_without_adapters_is_rejected(capsys):
    assert main(["params", "--method", "bitfit", "--vlpet_gate", "large"]) == 2
    assert "Table 9" in capsys.readouterr().err


def test_lora_matches_peft():
    """Same weights in our LoRA and peft's: same outputs and same LoRA gradients."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    ours = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16), PETConfig(method="single_lora", lora_dim=4,
                                                                                   lora_alpha=8, lora_dropout=0.0))
    torch.manual_seed(0)
    base = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16), None)
    base.load_state_dict({k: v for k, v in ours.state_dict().items() if ".lora_" not in k})
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], bias="none")
    oracle = peft.inject_adapter_in_model(cfg, base)
    with torch.no_grad():  # non-zero B so the LoRA path matters
        for name, module in ours.named_modules():
            if hasattr(module, "lora_A"):
                module.lora_B.normal_()
                target = oracle.get_submodule(name)
                target.lora_A["default"].weight.copy_(module.lora_A)
                target.lora_B["default"].weight.copy_(module.lora_B)
    g = torch.Generator().manual_seed(1)
    ids, feats = torch.randint(4, 900, (2, 6), generator=g), torch.randn(2, 49, 16, generator=g)
    boxes, labels = torch.zeros(2, 49, 4), torch.randint(4, 900, (2, 4), generator=g)
    outs = [m.eval()(ids, feats, boxes, labels=labels).logits for m in (ours, oracle)]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)
    for out in outs:
        out.square().mean().backward()
    for name, module in ours.named_modules():
        if hasattr(module, "lora_A"):
            ref = oracle.get_submodule(name).lora_B["default"].weight.grad
            torch.testing.assert_close(module.lora_B.grad, ref, atol=1e-6, rtol=1e-4)


METHODS = [("full_finetuning", "none"), ("bitfit", "none"), ("single_adapter", "none"),
           ("single_compacter", "none"), ("single_lora", "none"), ("single_prompt", "none"),
           ("hyperformer", "none"), ("single_adapter", "large"), ("single_compacter", "small")]


@pytest.mark.parametrize("method,gate", METHODS)
def test_each_method_trains_only_its_parameters(method, gate):
    """A few AdamW steps on a fixed batch: the loss falls and only the trainable set moves."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16),
                        PETConfig(method=method, gate=gate, lora_dim=4, prompt_len=3, prompt_mid_dim=16))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(2)
    ids, feats = torch.randint(4, 900, (4, 6), generator=g), torch.randn(4, 49, 16, generator=g)
    boxes, labels = torch.zeros(4, 49, 4), torch.randint(4, 900, (4, 3), generator=g)
    from vlpet.losses import token_mean_loss

    def eval_loss() -> float:  # without dropout: its draws differ between transformers releases
        model.eval()
        with torch.no_grad():
            loss = token_mean_loss(model(ids, feats, boxes, labels=labels, task="vqa").logits, labels).item()
        model.train()
        return loss

    first = eval_loss()
    for _ in range(8):
        opt.zero_grad()
        token_mean_loss(model(ids, feats, boxes, labels=labels, task="vqa").logits, labels).backward()
        opt.step()
    assert eval_loss() < first
    for n, p in model.named_parameters():
        unused = "k_proj.bias" in n or ("task_embeddings." in n and not n.endswith(".vqa"))  # no gradient reaches them
        assert torch.equal(p, before[n]) != p.requires_grad or unused, n


def test_hyperformer_needs_the_task():
    model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16), PETConfig(method="hyperformer"))
    with pytest.raises(ValueError, match="task"):
        model(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 49, 16), torch.zeros(1, 49, 4),
              labels=torch.ones(1, 2, dtype=torch.long))


def test_t5_bitfit_adds_the_official_biases():
    """LST repository's BitFit on stock T5: every Linear / T5LayerNorm gets a bias, initialised as that code's
    constructors leave them (spec t5-baselines-lst.md §4.2), and only biases + the visual embedding train."""
    from vlpet.flags.published import method_preset

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-t5", feat_dim=16), method_preset("bitfit", "t5"))
    lm, bound = model.lm, 1 / 64 ** 0.5
    head = lm.lm_head.bias
    assert head.shape[0] == 1072 and not head[model.base_vocab_size:].any()
    assert 0 < head[: model.base_vocab_size].abs().max() <= bound
    attn = lm.decoder.block[1].layer[1].EncDecAttention
    assert all(0 < getattr(attn, x).bias.abs().max() <= bound for x in "qkvo")
    assert not lm.encoder.block[0].layer[1].DenseReluDense.wi.bias.any()
    assert not lm.decoder.final_layer_norm.bias.any() and not model.visual_embedding.feat_embedding[1].bias.any()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.endswith(".bias") or n.startswith("visual_embedding.") for n in trainable)
    assert not any("relative_attention_bias" in n for n in trainable)
