"""Params (%) at full size equal the official counts (model spec §10, fixtures param_counts)."""

import json

import pytest

from vlpet.__main__ import main

CASES = [  # backbone, method, extra args, trainable, total, printed %
    ("bart-base", "vl-pet-small", [], 4_291_020, 143_845_068, "2.98"),
    ("bart-base", "vl-pet-middlex", [], 4_281_804, 143_835_852, "2.98"),
    ("bart-base", "vl-pet-middley", [], 4_281_792, 143_835_840, "2.98"),
    ("bart-base", "vl-pet-large", [], 6_052_416, 145_606_464, "4.16"),
    ("t5-base", "vl-pet-small", [], 10_518_168, 233_457_816, "4.51"),
    ("t5-base", "vl-pet-middlex", [], 10_499_736, 233_439_384, "4.50"),
    ("t5-base", "vl-pet-middley", [], 10_499_712, 233_439_360, "4.50"),
    ("t5-base", "vl-pet-large", [], 17_582_208, 240_521_856, "7.31"),
    ("bart-base", "vl-pet-small", ["--video"], 3_111_372, 142_665_420, "2.18"),
    ("bart-base", "vl-pet-middlex", ["--video"], 3_102_156, 142_656_204, "2.17"),
    ("bart-base", "vl-pet-middley", ["--video"], 3_102_144, 142_656_192, "2.17"),
    ("bart-base", "vl-pet-large", ["--video"], 4_872_768, 144_426_816, "3.37"),
    # The Ladder-Side-Tuning repository's VL-T5 scripts (upstream-lst fixtures, param_counts/full_size_counts.json).
    ("t5-base", "full_finetuning", [], 224_540_160, 224_540_160, "100.00"),
    ("t5-base", "bitfit", [], 1_865_416, 224_824_264, "0.83"),
    ("t5-base", "prompt_tuning", [], 2_842_400, 225_801_248, "1.26"),
    ("t5-base", "lora", [], 18_170_112, 241_128_960, "7.54"),
    ("t5-base", "adapter", [], 19_333_632, 242_292_480, "7.98"),
    ("t5-base", "lst", [], 17_967_384, 240_926_232, "7.46"),
    ("t5-base", "adapter", ["--adapter_train_layer_norms"], 19_381_248, 242_292_480, "8.00"),  # spec §4.5
]


@pytest.mark.parametrize("backbone,method,extra,trainable,total,pct", CASES)
def test_full_size_counts(capsys, backbone, method, extra, trainable, total, pct):
    assert main(["params", "--backbone", backbone, "--method", method, *extra]) == 0
    line, js = capsys.readouterr().out.strip().splitlines()
    assert line == f"Trainable param percentage: {pct}% ({trainable}/{total})"
    assert json.loads(js)["trainable"] == trainable and json.loads(js)["total"] == total


def test_counts_follow_the_structure(capsys):
    """Other sizes: the closed form of model spec §10 (A + G + D + LN + VIS), not a stored constant."""
    r, r_g, r_d, d, L = 48, 32, 24, 768, 6
    main(["params", "--method", "vl-pet-large", "--adapter_down_dim", str(r), "--adapter_gating_down_dim", str(r_g),
          "--decoder_enc_attn_value_parallel_adapter_down_dim", str(r_d), "--feat_dim", "1024"])
    got = json.loads(capsys.readouterr().out.strip().splitlines()[1])
    adapters = 2 * L * (2 * d * r + r + d)
    gates = 2 * L * (2 * d * r_g + r_g + d)
    vpa = L * (2 * d * r_d + r_d + d)
    vis = (1024 * d + d) + 2 * d + (5 * d + d) + 2 * d + 2 * d
    assert got["trainable"] == adapters + gates + vpa + 13 * 2 * d + vis
    assert got["total"] == 139_574_016 + vis + adapters + gates + vpa


def test_bad_override_is_one_clear_error(capsys):
    assert main(["params", "--adapter_down_dim", "10", "--encoder_adapter_multihead_num_head", "4"]) == 2
    assert "divisible" in capsys.readouterr().err


def test_lst_names_are_t5_only(capsys):
    assert main(["params", "--backbone", "bart-base", "--method", "lst"]) == 2
    assert "T5" in capsys.readouterr().err


def test_help_says_which_configuration_each_name_gives(capsys):
    with pytest.raises(SystemExit):
        main(["params", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Ladder-Side-Tuning" in text and "VL-Adapter" in text
