"""Speed options (issue 12): compiled vs eager outputs, the compile fallback, flag validation, and --compile/--bf16
training and evaluating end to end on the tiny model.

The compile tests use the ``aot_eager`` backend (dynamo + AOT autograd, no C++ code generation) to stay cheap on
a shared CPU; ``VLPET_SLOW_TESTS=1`` adds the inductor backend (minutes of C++ compilation on CPU)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from test_trainer import argv, data  # noqa: F401  (the trainer tests' synthetic data fixture)
from vlpet.config import ModelConfig, SpeedConfig
from vlpet.losses import sample_mean_loss
from vlpet.models.build import build_model
from vlpet.flags.published import method_preset
from vlpet.commands.train import main as train_main
from vlpet.flags.parse import make_parser
from vlpet.train.speed import CompiledForward, compile_model, speed_config_from_args

BACKENDS = ["aot_eager"] + (["inductor"] if os.environ.get("VLPET_SLOW_TESTS") else [])


def _logits_and_grads(model, batch):
    out = model(*batch[:3], labels=batch[3])
    sample_mean_loss(out.logits, batch[3]).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out.logits.detach(), grads


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_forward_and_grads_match_eager(backend):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=32), method_preset("vl-pet-large", "bart")).eval()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randint(5, 100, (2, 7), generator=g), torch.randn(2, 49, 32, generator=g), torch.zeros(2, 49, 4),
             torch.randint(5, 100, (2, 4), generator=g))
    ref_logits, ref_grads = _logits_and_grads(model, batch)
    warnings = []
    compile_model(model, SpeedConfig(compile=True, compile_backend=backend), torch.device("cpu"), warnings.append)
    assert isinstance(model.forward, CompiledForward)
    logits, grads = _logits_and_grads(model, batch)
    assert not warnings and not model.forward.failed
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=0)
    assert set(model.state_dict()) == set(build_model(ModelConfig(backbone="tiny-bart", feat_dim=32),
                                                      method_preset("vl-pet-large", "bart")).state_dict())


def test_compile_failure_and_missing_compiler_fall_back_to_eager(monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no kernels today")

    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    expected = model(x)
    warnings = []
    compile_model(model, SpeedConfig(compile=True, compile_backend=broken_backend), torch.device("cpu"),
                  warnings.append)
    assert torch.equal(model(x), expected) and torch.equal(model(x), expected)
    assert len(warnings) == 1 and "running eager" in warnings[0] and model.forward.failed
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    plain, warnings = torch.nn.Linear(3, 2), []
    compile_model(plain, SpeedConfig(compile=True), torch.device("cpu"), warnings.append)
    assert "forward" not in vars(plain) and "C++ compiler" in warnings[0]


def test_speed_flags_map_onto_the_config_and_are_validated():
    args = make_parser().parse_args(["--bf16", "--tf32", "--compile", "--nan_check_every", "4",
                                     "--save_every_steps", "8"])
    assert speed_config_from_args(args) == SpeedConfig(bf16=True, tf32=True, compile=True, nan_check_every=4)
    for bad in (["--nan_check_every", "0"], ["--nan_check_every", "3", "--save_every_steps", "4"]):
        with pytest.raises(ValueError, match="nan_check_every"):
            speed_config_from_args(make_parser().parse_args(bad))


def test_compile_bf16_train_and_evaluate_end_to_end(data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    extra = "--tasks vqa,caption --compile --compile_backend aot_eager --bf16 --tf32 --nan_check_every 2"
    assert train_main(argv(data, out, extra=extra)) == 0
    captured = capsys.readouterr()
    final = json.loads(captured.out.strip().splitlines()[-1])
    assert set(final["test"]) == {"vqa", "caption"} and set(final["val"]) == {"vqa", "caption"}
    assert "running eager" not in captured.err
    assert json.loads((out / "config.json").read_text())["args"]["compile"] is True
