"""LST (issue 14): the fisher-v2 side initialisation step by step against the official code's record
(tests/fixtures/official-lst/t5-lst/lst_init.safetensors), the saved Fisher reused on resume, and no backward
graph through the backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from golden import Fixture
from vlpet.config import ModelConfig, PETConfig
from vlpet.models.build import build_model
from vlpet.pet import lst

pytestmark = pytest.mark.golden
NAME = "official-lst/t5-lst"
INIT = Path(__file__).resolve().parent / "fixtures" / "official-lst" / "t5-lst" / "lst_init.safetensors"


@pytest.fixture(scope="module")
def record():
    data = load_file(str(INIT))
    part = lambda prefix: {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}  # noqa: E731
    n = len({k.split(".")[1] for k in data if k.startswith("fisher_inputs.")})
    samples = [(data[f"fisher_inputs.{i:03d}.input_ids"], data[f"fisher_inputs.{i:03d}.target_ids"]) for i in range(n)]
    return dict(pretrained=part("pretrained."), fisher=part("fisher."), pruned=part("pruned."),
                side_init=part("side_init."), samples=samples)


@pytest.fixture()
def model(record):
    """Our LST model for the fixture, its backbone holding the pseudo-pretrained weights (side not yet set)."""
    torch.set_num_threads(1)
    model = Fixture(NAME).build()  # built at the resized vocabulary; the checkpoint's own rows come first
    model.base_vocab_size = record["pretrained"]["shared.weight"].shape[0]
    state = model.lm.state_dict()
    with torch.no_grad():
        for key, value in record["pretrained"].items():
            if key in state:
                state[key][: value.shape[0]].copy_(value)
    return model


def test_fisher_matches_the_official_pass(model, record):
    fisher = lst.fisher_importance(lst.stock_backbone(model), record["samples"])
    assert set(fisher) == set(record["fisher"])
    for key, ref in record["fisher"].items():  # rounding only (sdpa here, eager attention there): ~1e-6 relative
        err = (fisher[key] - ref).abs().max()
        assert err <= 1e-5 * ref.abs().max(), f"{key}: {err:.2e}"


def test_pruning_matches_pruning_v2(model, record):
    cfg = model.lm.config
    pruned = lst.prune_without_residual(record["pretrained"], record["fisher"], 4, cfg.num_layers,
                                        cfg.num_decoder_layers)
    for key, value in pruned.items():
        assert torch.equal(value, record["pruned"][key]), key


def _side_state(model) -> dict[str, torch.Tensor]:
    return {k[len("lm."):]: v for k, v in model.state_dict().items()
            if ".side_block." in k or "final_side_layer_norm" in k}


def test_side_network_initialised_from_the_pruned_backbone(model, record, tmp_path, monkeypatch):
    """The whole run-start hook on training batches: side blocks = official side init; the Fisher is saved and,
    on a second start (resume), read back instead of recomputed."""
    loader = [{"input_ids": i, "target_ids": t} for i, t in record["samples"]]
    assert lst.init_side_network(model, loader, tmp_path).startswith("LST side network initialised")
    for key, value in _side_state(model).items():
        torch.testing.assert_close(value, record["side_init"][key], rtol=0, atol=0, msg=key)
    assert (tmp_path / lst.FISHER_FILE).is_file()
    with torch.no_grad():
        for p in model.lm.encoder.side_block.parameters():
            p.zero_()
    monkeypatch.setattr(lst, "fisher_importance", lambda *a: pytest.fail("the saved Fisher was recomputed"))
    assert "read the Fisher importance" in lst.init_side_network(model, loader, tmp_path)
    for key, value in _side_state(model).items():
        torch.testing.assert_close(value, record["side_init"][key], rtol=0, atol=0, msg=key)


def test_ddp_rank_waits_for_rank_0s_fisher_and_reads_it_onto_the_model_device(model, record, tmp_path,
                                                                                monkeypatch):
    """Another rank (save=False, a barrier as ``wait``) never computes the Fisher: it waits while rank 0 computes
    and saves it (simulated inside the barrier), then reads the file onto its model's device (map_location, so a
    CUDA resume multiplies CUDA tensors), giving the official side init."""
    import safetensors.torch

    loader = [{"input_ids": i, "target_ids": t} for i, t in record["samples"]]
    computed, devices, real_fisher, real_load = [], [], lst.fisher_importance, safetensors.torch.load_file
    monkeypatch.setattr(lst, "fisher_importance", lambda *a: computed.append(1) or real_fisher(*a))
    monkeypatch.setattr(safetensors.torch, "load_file",
                        lambda path, device="cpu": devices.append(device) or real_load(path, device=device))

    def barrier():  # rank 0 reaches the barrier after computing and saving the Fisher
        assert not (tmp_path / lst.FISHER_FILE).exists()
        assert "computed" in lst.init_side_network(model, loader, tmp_path, save=True, wait=lambda: None)

    with torch.no_grad():
        for p in model.lm.encoder.side_block.parameters():
            p.zero_()
    assert "read the Fisher importance" in lst.init_side_network(model, loader, tmp_path, save=False, wait=barrier)
    assert computed == [1] and devices == [str(next(model.parameters()).device)]
    for key, value in _side_state(model).items():
        torch.testing.assert_close(value, record["side_init"][key], rtol=0, atol=0, msg=key)


def test_no_backward_graph_through_the_backbone():
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-t5", feat_dim=16), PETConfig(method="lst", side_reduction_factor=4))
    model.train()
    seen = []
    for stack in (model.lm.encoder, model.lm.decoder):
        for block in stack.block:
            block.register_forward_hook(lambda _m, _i, out: seen.append(out[0]))
    g = torch.Generator().manual_seed(1)
    ids, feats = torch.randint(2, 900, (2, 6), generator=g), torch.randn(2, 49, 16, generator=g)
    labels = torch.randint(2, 900, (2, 4), generator=g)
    logits = model(ids, feats, torch.zeros(2, 49, 4), labels=labels).logits
    assert len(seen) == 4 and not any(h.requires_grad or h.grad_fn is not None for h in seen)
    logits.square().mean().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    assert model.visual_embedding.feat_embedding[0].weight.grad.abs().sum() > 0  # vision reaches the side only
    assert model.lm.encoder.side_gate_params[0].grad is not None


def test_other_methods_skip_the_hook(tmp_path):
    model = build_model(ModelConfig(backbone="tiny-t5", feat_dim=16), PETConfig(method="lora", lora_dim=4))
    assert lst.init_side_network(model, [], tmp_path) is None
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flags,message", [
    ("--load_side_pretrained_weights fisher-v3", "fisher-v2"),
    ("--encoder_side_layers [1,3]", "not implemented"),
])
def test_unsupported_lst_options_are_rejected_by_name(flags, message):
    from vlpet.flags.published import build_parser, pet_config_from_args

    args = build_parser("t", "").parse_args(f"--backbone t5-base --use_side_transformers {flags}".split())
    with pytest.raises(ValueError, match=message):
        pet_config_from_args(args)


def test_lst_needs_a_t5_backbone():
    with pytest.raises(ValueError, match="T5"):
        build_model(ModelConfig(backbone="tiny-bart", feat_dim=16), PETConfig(method="lst"))
