"""``--onednn`` (models/onednn.py): the oneDNN Linear path against the stock one on the tiny models — outputs and
gradients to fp32 rounding, the same beam search, the stock path wherever the option must not act, and training
end to end through ``python -m vlpet train``."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from test_trainer import argv, data  # noqa: F401  (the trainer tests' synthetic data fixture)
from vlpet.config import ModelConfig, SpeedConfig
from vlpet.losses import sample_mean_loss
from vlpet.models import onednn
from vlpet.models.build import build_model
from vlpet.flags.published import method_preset
from vlpet.commands.train import main as train_main
from vlpet.flags.parse import make_parser
from vlpet.train.speed import apply_model_options, speed_config_from_args

pytestmark = pytest.mark.skipif(onednn.unavailable() is not None, reason=str(onednn.unavailable()))


def _model(backbone: str, method: str = "vl-pet-large"):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, feat_dim=32), method_preset(method, backbone.split("-")[1]))


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(5, 100, (3, 7), generator=g), torch.randn(3, 49, 32, generator=g), torch.zeros(3, 49, 4),
            torch.randint(5, 100, (3, 5), generator=g))


def _loss_logits_grads(model, batch):
    out = model(*batch[:3], labels=batch[3])
    loss = sample_mean_loss(out.logits, batch[3])
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.detach(), out.logits.detach(), grads


@pytest.mark.parametrize("backbone,method", [("tiny-bart", "vl-pet-large"), ("tiny-t5", "vl-pet-middlex"),
                                             ("tiny-bart", "full_finetuning")])
def test_outputs_and_gradients_match_the_stock_path(backbone, method):
    model = _model(backbone, method).eval()  # eval: no dropout, so both passes see the same network
    batch = _batch()
    ref = _loss_logits_grads(model, batch)
    n = onednn.use_onednn(model)
    assert n > 0 and not any(type(m) is nn.Linear for m in model.modules())
    loss, logits, grads = _loss_logits_grads(model, batch)
    torch.testing.assert_close(loss, ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, ref[1], rtol=1e-5, atol=1e-5)
    assert grads.keys() == ref[2].keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref[2][name], rtol=1e-4, atol=1e-5, msg=name)


def test_same_beam_search_and_state_dict_and_undo():
    model = _model("tiny-bart").eval()
    keys = list(model.state_dict())
    batch = _batch(1)
    with torch.inference_mode():
        ref = model.generate(*batch[:3], num_beams=3, max_length=8)
    onednn.use_onednn(model)
    with torch.inference_mode():
        out = model.generate(*batch[:3], num_beams=3, max_length=8)
    assert torch.equal(out, ref)
    assert list(model.state_dict()) == keys
    twin = copy.deepcopy(model)  # the class swap survives copying (no bound methods in instance dicts)
    assert any(type(m) is onednn.OneDNNLinear for m in twin.modules())
    assert onednn.use_stock(model) > 0 and not any(type(m) is onednn.OneDNNLinear for m in model.modules())


def test_stock_path_where_the_option_must_not_act(monkeypatch):
    layer = nn.Linear(8, 4)
    x = torch.randn(5, 8)
    onednn.use_onednn(layer)
    calls = []
    real = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(onednn, "_OneDNNLinearFn", type("Spy", (), {"apply": staticmethod(
        lambda *a: calls.append(1) or real(a[0], a[1], a[2], "none", [], ""))}))
    layer(x)
    assert calls == [1]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast keeps the stock bf16 linear
        assert layer(x).dtype == torch.bfloat16
    layer.double()(x.double())  # fp64: stock
    layer.float()(torch.empty(0, 8))  # empty batch: stock
    assert calls == [1]
    subclass = type("MyLinear", (nn.Linear,), {})(3, 3)  # subclasses keep their own class
    assert onednn.use_onednn(subclass) == 0 and type(subclass).__name__ == "MyLinear"


def test_flag_maps_onto_the_config_and_is_refused_off_cpu():
    assert speed_config_from_args(make_parser().parse_args(["--onednn"])) == SpeedConfig(onednn=True)
    model, warnings = nn.Sequential(nn.Linear(2, 2)), []
    apply_model_options(model, SpeedConfig(onednn=True), torch.device("cuda"), warnings.append)
    assert type(model[0]) is nn.Linear and "ignored" in warnings[0] and "CPU option" in warnings[0]
    apply_model_options(model, SpeedConfig(), torch.device("cpu"), warnings.append)
    assert type(model[0]) is nn.Linear and len(warnings) == 1
    apply_model_options(model, SpeedConfig(onednn=True), torch.device("cpu"), warnings.append)
    assert type(model[0]) is onednn.OneDNNLinear
    apply_model_options(nn.Linear(2, 2), SpeedConfig(onednn=True, bf16=True), torch.device("cpu"), warnings.append)
    assert len(warnings) == 2 and "--bf16" in warnings[1]


def test_onednn_train_and_evaluate_end_to_end(data, tmp_path, capsys):  # noqa: F811
    runs = {}
    for name, extra in (("stock", ""), ("onednn", "--onednn")):
        out = tmp_path / name
        assert train_main(argv(data, out, extra=f"--tasks vqa,caption {extra}")) == 0
        runs[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (out / "LAST" / "pet_config.json").exists()
    assert set(runs["onednn"]["test"]) == {"vqa", "caption"}
    assert json.loads((tmp_path / "onednn" / "config.json").read_text())["args"]["onednn"] is True
    # one epoch of the same seed (dropout on, same masks): the training loss agrees to fp32 rounding
    epoch = {name: json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0]) for name in runs}
    assert epoch["onednn"]["train"]["loss"] == pytest.approx(epoch["stock"]["train"]["loss"], rel=1e-4)


def test_frozen_weight_copy_for_the_backward_follows_the_weight():
    layer = nn.Linear(6, 4).requires_grad_(False)
    onednn.use_onednn(layer)
    x = torch.randn(3, 6, requires_grad=True)
    layer(x).sum().backward()
    kept = layer.frozen_weight_t()
    assert layer.frozen_weight_t() is kept and torch.equal(kept, layer.weight.t())
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(3, 6))
    with torch.no_grad():
        layer.weight.mul_(2)  # changed in place: a new copy
    assert torch.equal(layer.frozen_weight_t(), layer.weight.t()) and layer.frozen_weight_t() is not kept
    x.grad = None
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(3, 6))
    onednn.use_stock(layer)
    assert "_onednn_weight_t" not in vars(layer) and type(layer) is nn.Linear
