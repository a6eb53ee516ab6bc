"""Published command lines → configs, and official checkpoints: accepted variants and one clear error otherwise."""

import pytest
import torch

from golden import Fixture, fixture_names
from vlpet.flags.published import build_parser, explicit_dests, model_config_from_args, pet_config_from_args
from vlpet.pet.official import CheckpointError, load_official_state_dict

pytestmark = pytest.mark.golden  # a skip while the fixtures are present fails (golden_guard.py)
LARGE_FIXTURE = "official/bart-vlpet-large"  # <folder>/<fixture>, as golden.fixture_names() lists it

LARGE = ("--use_adapter --use_single_adapter --no_encoder_adapter --use_adapter_down_dim "
         "--use_encoder_adapter_down_multihead --adapter_down_dim 96 --encoder_adapter_multihead_num_head 4 "
         "--use_encoder_adapter_gating_large_x_lowrank --adapter_gating_down_dim 96 --unfreeze_encoder_layer_norms "
         "--no_decoder_adapter --use_decoder_enc_attn_value_parallel_adapter_down_dim "
         "--decoder_enc_attn_value_parallel_adapter_down_dim 96 --reduction_factor 8 --use_tasks_prompts "
         "--backbone facebook/bart-base --feature RN101 --n_boxes 36 --downsample --local-rank 0").split()


def _parse(argv):
    parser = build_parser("t", "")
    args = parser.parse_args(argv)
    return model_config_from_args(args, explicit_dests(parser, argv)), pet_config_from_args(args)


def test_published_large_command_line():
    model_cfg, pet = _parse(LARGE)
    assert (pet.gate, pet.adapter_dim, pet.num_heads, pet.gate_dim, pet.vpa_dim, pet.scale) == ("large", 96, 4, 96, 96, 1.0)
    assert model_cfg.feat_dim == 2048 and model_cfg.downsample and model_cfg.backbone == "facebook/bart-base"


def test_t5_small_zero_init_flags():
    argv = [a for a in LARGE if a not in ("--use_encoder_adapter_gating_large_x_lowrank",)]
    argv += ["--use_encoder_adapter_gating_small_xy_cat", "--use_encoder_gating_scaling",
             "--encoder_gating_scaling_factor", "0.3", "--use_encoder_gating_small_up_zero_init",
             "--use_encoder_gating_large_x_lowrank_up_zero_init", "--use_encoder_multihead_up_zero_init",
             "--feature", "ViT"]
    model_cfg, pet = _parse(argv)
    assert pet.gate == "small" and pet.scale == 0.3 and pet.zero_init_gate and pet.zero_init_adapter_up
    assert not pet.zero_init_vpa_up and model_cfg.feat_dim == 512


@pytest.mark.parametrize("argv,match", [(["--use_lradapter"], "not implemented"),
                                        (["--use_encoder_adapter_gating_add"], "not implemented"),
                                        (["--gradient_accumulation_steps", "2"], "gradient_accumulation_steps 2"),
                                        (["--optim", "sgd"], "--optim sgd"),
                                        (["--multitask_sampling", "balanced"], "multitask_sampling balanced"),
                                        (["--testing"], "--testing True"),
                                        (["--use_lora"], "select 2 PET methods")])
def test_unsupported_options_are_named(argv, match):
    with pytest.raises(ValueError, match=match):
        _parse(LARGE + argv)


@pytest.mark.parametrize("argv,method", [
    ("--unfreeze_language_model", "full_finetuning"), ("--unfreeze_bias", "bitfit"),
    ("--use_hyperformer --unique_hyper_net --unfreeze_layer_norms --projected_task_embedding_dim 8", "hyperformer"),
    ("--use_lora --lora_dim 128 --use_single_lora", "single_lora"),
    ("--encoder_prompt_len 40 --mid_dim 800 --use_single_prompt", "single_prompt"),
    ("--use_adapter --use_single_adapter --reduction_factor 8 --unfreeze_layer_norms", "single_adapter"),
    ("--use_compacter --use_single_adapter --hypercomplex_division 2 --reduction_factor 8 --shared_phm_rule False "
     "--factorized_phm False --unfreeze_layer_norms", "single_compacter")])
def test_baseline_scripts_select_their_method(argv, method):
    _, pet = _parse(argv.split() + ["--backbone", "facebook/bart-base", "--feature", "RN101"])
    assert pet.method == method and pet.gate == "none"


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit):
        build_parser("t", "").parse_args(LARGE + ["--adapter_down"])  # no silent abbreviation
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.fixture(scope="module")
def large():
    fx = Fixture(LARGE_FIXTURE)
    return fx, fx.build()


def _state(fx):
    from safetensors.torch import load_file

    return load_file(str(fx.dir / "state_dict.safetensors"))


@pytest.mark.skipif(LARGE_FIXTURE not in fixture_names(), reason="needs the official fixture")
def test_module_prefix_and_aliases_accepted(large):
    fx, model = large
    sd = {"module." + k: v for k, v in _state(fx).items()}
    for alias, target in fx.meta["state_dict_aliases"].items():
        sd["module." + alias] = sd["module." + target]
    load_official_state_dict(model, sd)


@pytest.mark.skipif(LARGE_FIXTURE not in fixture_names(), reason="needs the official fixture")
def test_bad_checkpoint_names_every_problem(large):
    fx, model = large
    sd = _state(fx)
    sd.pop("model.encoder.layers.0.attn_adapter_multihead_down.2.weight")
    sd["model.encoder.layers.0.something_new"] = torch.zeros(3)
    sd["model.encoder.layers.1.ff_adapter_multihead_up.weight"] = torch.zeros(5, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_official_state_dict(model, sd)
    msg = str(err.value)
    assert "attn_adapter_multihead_down.2.weight" in msg and "something_new" in msg
    assert "ff_adapter_multihead_up.weight" in msg and "(5, 5)" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


@pytest.mark.skipif(LARGE_FIXTURE not in fixture_names(), reason="needs the official fixture")
def test_task_specific_adapters_are_not_silently_merged(large):
    fx, model = large
    sd = _state(fx)
    key = "model.decoder.layers.0.encoder_attn.attn_value_parallel_adapter.adapters.vqa.up_sampler.bias"
    sd[key.replace(".vqa.", ".gqa.")] = sd[key] + 1
    with pytest.raises(CheckpointError, match="unexpected"):
        load_official_state_dict(model, sd)
