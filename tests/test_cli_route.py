"""The new user's offline route (issue 22 item 6): ``train --method NAME`` (every published method, expanding to its
launcher's flags), the 0-method error naming the methods, the demo's reusable tokenizer / backbone / checkpoint,
demo → train → predict (from another folder) → report, and the warning for a random frozen backbone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vlpet.__main__ import main as cli
from vlpet.flags.methods import PUBLISHED_FLAGS
from vlpet.flags.parse import METHOD_NAMES, parse
from vlpet.flags.published import pet_config_from_args

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to run the launchers")
def test_every_method_entry_is_its_launchers_flags():
    """Each --method expansion equals what its launcher passes (VLPET_PRINT_ARGS=1), less output/run_name/
    num_workers/seed; every name of ``params --method`` has an image-text entry."""
    dropped = {"--output", "--run_name", "--num_workers", "--seed"}
    for (domain, kind, method), (script, flags) in PUBLISHED_FLAGS.items():
        path = ROOT / script
        example = path.read_text().split("e.g. ", 1)[1].splitlines()[0].split()
        env = {**os.environ, "VLPET_PRINT_ARGS": "1", "SEEDS": "9595"}
        printed = subprocess.run(["bash", str(path), *example], capture_output=True, text=True, env=env,
                                 check=True).stdout.splitlines()
        kept, skip = [], False
        for token in printed:
            if skip:
                skip = False
            elif token in dropped:
                skip = True
            else:
                kept.append(token)
        assert kept == flags.split(), script
    assert {m for d, _, m in PUBLISHED_FLAGS if d == "image"} == set(METHOD_NAMES)


def test_method_expands_to_the_published_flags_and_explicit_flags_win():
    args = parse("--method vl-pet-large --backbone tiny-bart --lr 5e-3 --adapter_down_dim 32".split())
    pet = pet_config_from_args(args)
    assert (pet.method, pet.gate, pet.adapter_dim, pet.gate_dim, pet.vpa_dim) == ("vl-pet", "large", 32, 96, 96)
    assert args.lr == 5e-3 and args.batch_size == 500 and args.backbone == "tiny-bart" and args.epochs == 20
    assert args.method == "vl-pet-large" and "--use_encoder_adapter_gating_large_x_lowrank" in args.method_flags
    t5 = parse("--method vl-pet-small --backbone tiny-t5".split())  # the T5 script: scaling 0.3, zero inits
    pet = pet_config_from_args(t5)
    assert (pet.gate, pet.scale, pet.zero_init_gate, t5.lr) == ("small", 0.3, True, 3e-4)
    assert pet_config_from_args(parse(["--method", "lst"])).method == "lst"  # T5-only name: t5-base
    video = parse("--method vl-pet-large --tasks tvqa,how2qa,tvc,yc2c".split())
    assert video.lr == 7e-4 and video.feature_type == "ViT"
    for name in METHOD_NAMES:  # every published name expands on its own backbone kind
        kind = "tiny-t5" if name in ("lora", "adapter", "prompt_tuning", "lst") else "tiny-bart"
        pet_config_from_args(parse(["--method", name, "--backbone", kind]))


def test_a_method_without_a_published_script_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        parse("--method hyperformer --backbone tiny-t5".split())
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "no published image-text script on a T5 backbone" in err and "lst" in err


def test_no_method_flags_names_every_method(capsys):
    assert cli(["train", "--backbone", "tiny-bart", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no PET method" in err and "--method NAME" in err and all(name in err for name in METHOD_NAMES)


def test_from_scratch_with_a_frozen_backbone_warns(tmp_path, capsys):
    code = cli(["train", "--method", "vl-pet-large", "--backbone", "tiny-bart", "--from_scratch", "--tokenizer",
                str(tmp_path / "no-tokenizer"), "--output", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "warning: --from_scratch with vl-pet" in err and "random and stays frozen" in err


def tiny_demo(out: Path) -> Path:
    from vlpet.demo import DemoConfig, run_demo

    cfg = DemoConfig(epochs=1, n_train=16, n_val=8, n_test=8, feat_dim=32, batch_size=8, d_model=32, ffn_dim=64,
                     layers=1, decoder_layers=1, pretrain_steps=2, adapter_dim=8, gate_dim=8, vpa_dim=8, num_heads=2)
    assert run_demo(cfg, ("vqa",), out, show=False) == 0
    (run_dir,) = out.absolute().iterdir()
    return run_dir


def test_demo_train_predict_report_offline(tmp_path, monkeypatch, capsys):
    """The route the docs show: the demo's data, tokenizer and backbone feed ``train --method``; ``predict`` reads
    both checkpoints from another folder; ``report`` lists both runs. Relative paths as a user types them."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    demo = tiny_demo(Path("snap/demo"))
    assert f"run folder: {demo}" in (demo / "log.txt").read_text()  # absolute paths in what the demo writes
    for kept in ("tokenizer/tokenizer_config.json", "backbone/config.json", "LAST/pet_weights.safetensors", "data"):
        assert (demo / kept).exists(), kept
    assert "train on this data yourself (offline): python -m vlpet train --method vl-pet-large" in \
        (demo / "log.txt").read_text()
    rel = demo.relative_to(project)
    flags = (f"--method vl-pet-large --backbone {rel}/backbone --tokenizer {rel}/tokenizer --datasets_root "
             f"{rel}/data --feat_dim 32 --tasks vqa --adapter_down_dim 8 --adapter_gating_down_dim 8 "
             f"--decoder_enc_attn_value_parallel_adapter_down_dim 8 --batch_size 8 --epochs 1 --num_workers 0 "
             f"--train_topk 16 --valid_topk 8 --no_progress --output snap/mine").split()
    assert cli(["train", *flags]) == 0
    config = json.loads(Path("snap/mine/config.json").read_text())
    assert config["args"]["method"] == "vl-pet-large" and config["model"]["backbone"] == str(demo / "backbone")
    assert config["args"]["tokenizer"] == str(demo / "tokenizer")
    capsys.readouterr()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    feature = next((demo / "data").rglob("*.h5"))
    for checkpoint in (project / "snap" / "mine", demo):
        assert cli(["predict", "--checkpoint", str(checkpoint), "--task", "vqa", "--features", str(feature),
                    "--question", "what colour is the shape?"]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.count("\n") == 1  # one answer line (a 1-epoch model may say "")

    assert cli(["report", str(project / "snap"), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["backbone"] for row in rows] == ["demo tiny BART"] * 2  # the demo's backbone, named as such


def test_an_older_checkpoint_with_a_relative_backbone_is_found_from_another_folder(tmp_path):
    from vlpet.predict import stored_path

    run = tmp_path / "project" / "snap" / "run" / "LAST"
    (tmp_path / "project" / "snap" / "demo" / "backbone").mkdir(parents=True)
    run.mkdir(parents=True)
    assert stored_path("snap/demo/backbone", run) == str(tmp_path / "project" / "snap" / "demo" / "backbone")
    assert stored_path("facebook/bart-base", run) == "facebook/bart-base"  # a hub id stays
    assert stored_path("tiny-bart", run) == "tiny-bart"
