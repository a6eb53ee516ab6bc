"""The trainer end to end on synthetic data (issue: trainer): run folder, resume after SIGKILL, DDP, failures."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlpet.commands.train import main as train_main
from vlpet_flags import GATES, VLPET

SRC = str(Path(__file__).resolve().parents[1] / "src")
T5_EXTRA = "--use_encoder_multihead_up_zero_init --use_encoder_gating_scaling --encoder_gating_scaling_factor 0.3"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vlpet.synth.image import synth_words, write_synthetic
    from vlpet.data.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("trainer")
    write_synthetic(root / "data", n_train=24, n_val=8, n_test=8, seed=0, feat_dim=32)
    for style in ("bart", "t5"):
        build_tokenizer(style, synth_words()).save_pretrained(root / f"tok-{style}")
    return root


def argv(data: Path, out: Path, backbone: str = "tiny-bart", gate: str = "large", epochs: int = 1, extra: str = ""):
    style = backbone.split("-")[1]
    flags = (f"--backbone {backbone} --from_scratch --tokenizer {data / f'tok-{style}'} --datasets_root {data / 'data'} "
             f"--feat_dim 32 --epochs {epochs} --batch_size 6 --lr 1e-3 --warmup_ratio 0.1 --clip_grad_norm 5 "
             f"--use_tasks_prompts --n_boxes 36 --downsample --output {out} --seed 3 --no_progress "
             f"--train_topk 12 --valid_topk 4 {VLPET} {GATES[gate]} {T5_EXTRA if style == 't5' else ''} {extra}")
    return flags.split()


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
@pytest.mark.parametrize("gate", list(GATES))
def test_train_validate_test_writes_the_run_folder(data, tmp_path, capsys, backbone, gate):
    out = tmp_path / "run"
    assert train_main(argv(data, out, backbone, gate)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Trainable param percentage: ")
    final = json.loads(lines[-1])
    assert set(final["test"]) == {"vqa", "nlvr", "caption"}  # GQA has no test split (validated on test-dev)
    records = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["epoch"] == 0 and set(records[0]["val"]) == {"vqa", "gqa", "nlvr", "caption"}
    assert "test" in records[-1]
    assert (out / "log.txt").is_file() and json.loads((out / "config.json").read_text())["pet"]["gate"] == gate
    saved = load_file(str(out / "LAST" / "pet_weights.safetensors"))
    assert saved and all(".lm.model.shared" not in k for k in saved)  # only what was trained
    assert (out / "LATEST").read_text().strip() == "LAST"
    if importlib.util.find_spec("tensorboard") is not None:  # in requirements.txt; optional for the package
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def _run(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "vlpet", "train", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_then_resume_equals_an_uninterrupted_run(data, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _run(argv(data, full, epochs=3, extra="--tasks gqa,nlvr")).wait(timeout=300) == 0
    proc = _run(argv(data, cut, epochs=3, extra="--tasks gqa,nlvr"))
    deadline = time.time() + 300
    while not (cut / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _run(argv(data, cut, epochs=3, extra="--tasks gqa,nlvr --resume"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = (load_file(str(d / "LAST" / "pet_weights.safetensors")) for d in (full, cut))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _weights(run: Path) -> dict:
    return load_file(str(run / "LAST" / "pet_weights.safetensors"))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_sigkill_mid_epoch_with_step_checkpoints_then_resume(data, tmp_path):
    """--save_every_steps checkpoints inside an epoch; a kill anywhere, then --resume: same final weights."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    flags = "--tasks gqa,nlvr --save_every_steps 2"
    assert _run(argv(data, full, epochs=2, extra=flags)).wait(timeout=300) == 0
    proc = _run(argv(data, cut, epochs=2, extra=flags))
    deadline = time.time() + 300
    while not (cut / "LATEST").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _run(argv(data, cut, epochs=2, extra=flags + " --resume"))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _assert_same(_weights(full), _weights(cut))


def test_ctrl_c_mid_epoch_saves_the_position_and_resume_matches(data, tmp_path, monkeypatch, capsys):
    """A real SIGINT after global step 3 (mid-epoch 0): exit 130 with a checkpoint at that step; --resume continues
    at the next batch with the saved RNG states and ends with an uninterrupted run's weights."""
    from vlpet.train import saver

    full, cut = tmp_path / "full", tmp_path / "cut"
    flags = "--tasks gqa,nlvr --dropout 0.3"
    assert train_main(argv(data, full, epochs=2, extra=flags)) == 0
    original = saver.StepSaver.on_step

    def interrupt_after_step_3(self, done, step):
        original(self, done, step)
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(saver.StepSaver, "on_step", interrupt_after_step_3)
    assert train_main(argv(data, cut, epochs=2, extra=flags)) == 130
    assert "--resume" in capsys.readouterr().err
    state = torch.load(cut / "LAST" / "trainer_state.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"], state["epoch_step"]) == (0, 3, 3)
    monkeypatch.setattr(saver.StepSaver, "on_step", original)
    assert train_main(argv(data, cut, epochs=2, extra=flags + " --resume")) == 0
    assert "resumed from" in (cut / "log.txt").read_text() and "step 3/" in (cut / "log.txt").read_text()
    _assert_same(_weights(full), _weights(cut))


def test_two_process_gloo_ddp_follows_one_process(data, tmp_path):
    """Same global batch (GQA: 10 = 2 × 5), dropout off: the trained weights agree."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = "--tasks gqa --dropout 0 --epochs 2"
    assert _run(argv(data, one, extra=common + " --batch_size 6")).wait(timeout=300) == 0
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m", "vlpet",
           "train", *argv(data, two, extra=common + " --batch_size 3")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (load_file(str(d / "LAST" / "pet_weights.safetensors")) for d in (one, two))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)


def test_missing_data_is_one_clear_error(data, tmp_path, capsys):
    args = argv(data, tmp_path / "run")
    args[args.index("--datasets_root") + 1] = str(tmp_path / "nowhere")
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_existing_run_is_not_overwritten(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(argv(data, out, extra="--tasks gqa")) == 0
    before = (out / "LAST" / "pet_weights.safetensors").read_bytes()
    assert train_main(argv(data, out, extra="--tasks gqa")) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "LAST" / "pet_weights.safetensors").read_bytes() == before


def test_nan_loss_stops_with_step_and_task(data, tmp_path, capsys):
    assert train_main(argv(data, tmp_path / "run", extra="--tasks gqa --lr 1e30 --epochs 3")) == 3
    err = capsys.readouterr().err
    assert "step" in err and "gqa" in err


@pytest.mark.parametrize("script,positional", [("VL-PET-large.sh", "29531 16 4 16 16 1e-3 42"),
                                               ("single_lora.sh", "29532 42")])
def test_published_launcher_runs(data, tmp_path, script, positional):
    """The launcher with its published positional arguments, overrides after them, through torchrun."""
    out = tmp_path / "run"
    extra = (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok-bart'} --datasets_root {data / 'data'} "
             f"--feat_dim 32 --epochs 1 --batch_size 6 --train_topk 6 --valid_topk 2 --num_workers 0 --lora_dim 4 "
             f"--tasks gqa,nlvr --output {out} --no_progress")
    script_path = Path(__file__).resolve().parents[1] / "scripts" / "image-text" / script
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(script_path), *positional.split(), *extra.split()], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["seed"] == 42 and (out / "LAST" / "pet_weights.safetensors").is_file()


T5_LAUNCHERS = {"T5-full_finetuning.sh": "full_finetuning", "T5-bitfit.sh": "bitfit",
                "T5-prompt_tuning.sh": "prompt_tuning", "T5-lora.sh": "lora", "T5-adapter.sh": "adapter",
                "T5-LST.sh": "lst"}


@pytest.mark.parametrize("script,method", list(T5_LAUNCHERS.items()))
def test_t5_launchers_run_the_lst_scripts(script, method):
    """The LST repository's scripts (GPU NPROC; one run per seed): each command line selects the method's T5
    configuration, with its published settings, and later flags override them."""
    from vlpet.flags.published import build_parser, pet_config_from_args

    script_path = Path(__file__).resolve().parents[1] / "scripts" / "image-text" / script
    env = dict(os.environ, PYTHON="echo", SEEDS="9595 9596")
    done = subprocess.run(["bash", str(script_path), "0", "1", "--epochs", "2"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for seed, line in zip((9595, 9596), lines):
        args = build_parser("t", "").parse_args(line.split("-m vlpet.train.launch ", 1)[1].split()[2:])
        assert pet_config_from_args(args).method == method
        assert (args.seed, args.epochs, args.batch_size, args.backbone) == (seed, 2, 300, "t5-base")
        assert args.output.endswith(f"@{seed}") and args.weight_decay == (3e-2 if method == "lst" else 0.01)
    no_args = subprocess.run(["bash", str(script_path)], capture_output=True, text=True, timeout=30)
    assert no_args.returncode == 2 and "usage:" in no_args.stderr


def test_t5_lst_launcher_trains(data, tmp_path):
    out = tmp_path / "run"
    extra = (f"--backbone tiny-t5 --from_scratch --tokenizer {data / 'tok-t5'} --datasets_root {data / 'data'} "
             f"--feat_dim 32 --epochs 1 --batch_size 6 --train_topk 6 --valid_topk 2 --num_workers 0 "
             f"--samples_for_fisher 4 --tasks nlvr --output {out} --no_progress")
    script_path = Path(__file__).resolve().parents[1] / "scripts" / "image-text" / "T5-LST.sh"
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", SEEDS="9596", MASTER_PORT="29533")
    done = subprocess.run(["bash", str(script_path), "0", "1", *extra.split()], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["seed"] == 9596 and config["pet"]["method"] == "lst"
    assert (out / "lst_fisher.safetensors").is_file() and (out / "LAST" / "pet_weights.safetensors").is_file()


BASELINE_FLAGS = {
    "full_finetuning": "--unfreeze_language_model",
    "bitfit": "--use_tasks_prompts --unfreeze_bias",
    "single_adapter": "--use_tasks_prompts --use_adapter --use_single_adapter --unfreeze_layer_norms",
    "single_compacter": "--use_tasks_prompts --use_compacter --use_single_adapter --hypercomplex_division 2 "
                        "--shared_phm_rule False --factorized_phm False --unfreeze_layer_norms",
    "single_lora": "--use_tasks_prompts --use_lora --use_single_lora --lora_dim 4",
    "single_prompt": "--use_tasks_prompts --use_single_prompt --encoder_prompt_len 4 --mid_dim 16",
    "hyperformer": "--use_hyperformer --unique_hyper_net --unfreeze_layer_norms --projected_task_embedding_dim 8",
    "single_adapter+large": "--use_tasks_prompts --use_adapter --use_single_adapter --unfreeze_layer_norms "
                            "--use_encoder_adapter_gating_large_x_lowrank --adapter_gating_down_dim 8",
    "single_compacter+small": "--use_tasks_prompts --use_compacter --use_single_adapter --hypercomplex_division 2 "
                              "--shared_phm_rule False --factorized_phm False --unfreeze_layer_norms "
                              "--use_encoder_adapter_gating_small_xy_cat",
}


# The Ladder-Side-Tuning repository's VL-T5 scripts (their flags, tiny sizes): on T5 these select its configurations.
LST_REPO_FLAGS = {
    "full_finetuning": "--use_tasks_prompts --unfreeze_language_model",
    "bitfit": "--use_tasks_prompts --use_bitfit",
    "prompt_tuning": "--use_tasks_prompts --encoder_prompt_len 4 --mid_dim 16 --use_single_prompt",
    "lora": "--use_tasks_prompts --use_lora --lora_dim 4 --use_single_lora",
    "adapter": "--use_tasks_prompts --use_adapter --unfreeze_layer_norms --reduction_factor 4 --use_single_adapter",
    "lst": "--use_tasks_prompts --weight_decay 3e-2 --use_side_transformers --side_reduction_factor 4 "
           "--load_side_pretrained_weights fisher-v2 --samples_for_fisher 8",
}
CASES = [("tiny-bart", name) for name in BASELINE_FLAGS] + [("tiny-t5", name) for name in LST_REPO_FLAGS]


@pytest.mark.parametrize("backbone,name", CASES)
def test_every_baseline_trains_end_to_end(data, tmp_path, capsys, backbone, name):
    """Each baseline (two Table 9 variants, and the LST repository's T5 methods) through `python -m vlpet train`
    on the synthetic data: train, validate, test; the checkpoint holds exactly the method's trainable set."""
    out = tmp_path / "run"
    style = backbone.split("-")[1]
    method_flags = (BASELINE_FLAGS if style == "bart" else LST_REPO_FLAGS)[name]
    flags = (f"--backbone {backbone} --from_scratch --tokenizer {data / f'tok-{style}'} "
             f"--datasets_root {data / 'data'} --feat_dim 32 --epochs 1 --batch_size 6 --lr 1e-3 --n_boxes 36 "
             f"--downsample --output {out} --seed 3 --no_progress --train_topk 6 --valid_topk 2 "
             f"--tasks {'vqa,gqa,nlvr,caption' if style == 'bart' else 'nlvr,caption'} {method_flags}")
    assert train_main(flags.split()) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(final["test"]) == ({"vqa", "nlvr", "caption"} if style == "bart" else {"nlvr", "caption"})
    config = json.loads((out / "config.json").read_text())
    method, _, gate = name.partition("+")
    assert config["pet"]["method"] == method and config["pet"]["gate"] == (gate or "none")
    saved = load_file(str(out / "LAST" / "pet_weights.safetensors"))
    assert saved and (method != "full_finetuning" or any("shared" in k for k in saved))
    if method == "lst":  # the Fisher of the side init is kept for a resume
        assert (out / "lst_fisher.safetensors").is_file() and "Fisher" in (out / "log.txt").read_text()
        assert any(".side_block." in k for k in saved) and not any(".block.0.layer.0.SelfAttention.q" in k
                                                                    for k in saved if ".side_block." not in k)


def test_load_then_epochs_0_tests_the_loaded_weights(data, tmp_path, capsys):
    """--load a run's LAST/ with --epochs 0: test only (the official multitask_infer), same scores as that run."""
    first, again = tmp_path / "first", tmp_path / "again"
    assert train_main(argv(data, first, extra="--tasks nlvr,caption --epochs 2")) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]
    assert train_main(argv(data, again, extra=f"--tasks nlvr,caption --epochs 0 --load {first / 'LAST'}")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1])["test"] == trained
    assert any(line.startswith("loaded weights from") for line in out)
    assert not (again / "LAST").exists()  # nothing trained, nothing saved


def test_load_of_a_missing_checkpoint_is_one_clear_error(data, tmp_path, capsys):
    assert train_main(argv(data, tmp_path / "run", extra=f"--load {tmp_path / 'nope'}")) == 2
    err = capsys.readouterr().err
    assert "nope.pth" in err and "pet_weights.safetensors" in err and "Traceback" not in err
