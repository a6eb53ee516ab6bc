"""peft tuners as VL baselines (issue 21): DoRA, VeRA, (IA)³ and AdaLoRA on a tiny BART and a tiny T5 through
``python -m vlpet train --peft_config``: trained (validation with beam search, test), killed after a step checkpoint
and resumed bit-equal, exported, and re-loaded with ``PeftModel.from_pretrained`` onto the stock backbone with the
same outputs; the LoRA pin (a peft LoRA config equivalent to ``single_lora`` gives the same outputs and gradients);
DoRA's published 5.96 %; bad configs are one line; push and Hub repo ids at the huggingface_hub boundary."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_trainer import _assert_same, _weights, data  # noqa: F401  (data: the shared fixture)
from vlpet.__main__ import main as vlpet_main
from vlpet.commands.train import main as train_main
from vlpet.models.build import build_model
from vlpet.train.resume import load_initial_weights
from vlpet.train.saver import StepSaver

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"bart": ["q_proj", "v_proj"], "t5": ["q", "v"]}
FFN = {"bart": "fc2", "t5": "wo"}


def peft_config(method: str, style: str) -> dict:
    """Tiny versions of the launchers' configs (scripts/peft/*.json)."""
    qv = TARGETS[style]
    return {
        "dora": {"peft_type": "LORA", "r": 4, "lora_alpha": 4, "use_dora": True, "target_modules": qv,
                 "_vlpet": {"unfreeze_bias": True, "unfreeze_layer_norms": True}},
        "vera": {"peft_type": "VERA", "r": 8, "target_modules": qv + [FFN[style]]},
        "ia3": {"peft_type": "IA3", "target_modules": [qv[1], FFN[style]], "feedforward_modules": [FFN[style]]},
        # 4 optimizer steps: warm-up 1, budgeting 1-2, the final mask at step 3, after the resume point
        "adalora": {"peft_type": "ADALORA", "init_r": 4, "target_r": 2, "tinit": 1, "tfinal": 1, "deltaT": 1,
                    "target_modules": qv},
    }[method]


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """The stock tiny backbones saved with save_pretrained: the runs load them, PeftModel.from_pretrained too."""
    from vlpet.models.presets import build_lm

    root = tmp_path_factory.mktemp("backbones")
    for name in ("tiny-bart", "tiny-t5"):
        torch.manual_seed(0)
        lm, _, _ = build_lm(name, pretrained=False)
        lm.save_pretrained(root / name)
    return root


def argv(data: Path, backbones: Path, style: str, config: Path, out: Path,  # noqa: F811
         extra: str = "") -> list[str]:
    return (f"--backbone {backbones / f'tiny-{style}'} --tokenizer {data / f'tok-{style}'} "
            f"--datasets_root {data / 'data'} --feat_dim 32 --epochs 2 --batch_size 6 --lr 1e-3 --warmup_ratio 0.1 "
            f"--clip_grad_norm 5 --use_tasks_prompts --n_boxes 36 --downsample --output {out} --seed 3 --no_progress "
            f"--train_topk 4 --valid_topk 2 --tasks nlvr --num_beams 2 --save_every_steps 1 "
            f"--peft_config {config} {extra}").split()


def _kill_after_step(monkeypatch, at: int) -> None:
    """As SIGKILL right after the step-``at`` checkpoint: the signal arrives, and nothing more is saved."""
    original = StepSaver.on_step

    def send(self, done, step):
        original(self, done, step)
        if step == at:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StepSaver, "on_step", send)
    monkeypatch.setattr(StepSaver, "save_interrupted", lambda self: None)


def _our_lm(folder: Path):
    """Our VL model rebuilt from an exported folder's config and loaded from it (``--load FOLDER``)."""
    from vlpet.config import ModelConfig, PETConfig, from_dict

    config = json.loads((folder / "vlpet_config.json").read_text())
    model = build_model(from_dict(ModelConfig, config["model"]), from_dict(PETConfig, config["pet"]))
    load_initial_weights(model, str(folder))
    return model.eval()


@pytest.mark.parametrize("style", ["bart", "t5"])
@pytest.mark.parametrize("method", ["dora", "vera", "ia3", "adalora"])
def test_train_kill_resume_export_reload(data, backbones, tmp_path, monkeypatch, capsys, style, method):  # noqa: F811
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    config = tmp_path / "adapter_config.json"
    config.write_text(json.dumps(peft_config(method, style)))
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert train_main(argv(data, backbones, style, config, full)) == 0
    out = capsys.readouterr().out.splitlines()
    final = json.loads(out[-1])
    assert set(final["test"]) == {"nlvr"} and set(final["val"]) == {"nlvr"}
    saved = load_file(str(full / "LAST" / "pet_weights.safetensors"))
    tuner_keys = [k for k in saved if any(f"{t}_" in k for t in ("lora", "vera", "ia3"))]
    assert tuner_keys and all(".default" in k for k in tuner_keys)  # the tuner's tensors, peft's names
    assert any(k.startswith("visual_embedding.") for k in saved)  # the visual embedding stays trained
    summary = json.loads((full / "summary.json").read_text())
    assert out[0] == (f"Trainable param percentage: {summary['params']['percent']:.2f}% "
                      f"({summary['params']['trainable']}/{summary['params']['total']})")

    if (method, style) == ("dora", "bart"):  # report --paper table2 sets DoRA's published row beside the group
        capsys.readouterr()
        assert vlpet_main(["report", str(full), "--paper", "table2"]) == 0
        md = capsys.readouterr().out
        assert "| DoRA | " in md and "73.10 (Δ" in md and "one seed, batch 300" in md

    _kill_after_step(monkeypatch, 3)  # mid-epoch 1; AdaLoRA's final mask (step 3) comes after the resume
    assert train_main(argv(data, backbones, style, config, cut)) == 143
    monkeypatch.undo()
    assert train_main(argv(data, backbones, style, config, cut, "--resume")) == 0
    _assert_same(_weights(full), _weights(cut))
    if method == "adalora":
        states = [torch.load(d / "LAST" / "trainer_state.pt", weights_only=True)["state"]["tuner"]
                  for d in (full, cut)]
        assert states[0]["rank_pattern"] == states[1]["rank_pattern"] is not None

    export = tmp_path / "export"
    assert vlpet_main(["export", str(full / "LAST"), str(export)]) == 0
    card = (export / "README.md").read_text()
    assert card.startswith("---\n") and "params_percent" in card and "@inproceedings" in card
    ours = _our_lm(export)
    stock = AutoModelForSeq2SeqLM.from_pretrained(backbones / f"tiny-{style}")
    peft_lm = PeftModel.from_pretrained(stock, str(export)).eval()
    vocab = min(stock.config.vocab_size, ours.lm.config.vocab_size)
    ids = torch.randint(3, vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = ours.lm(input_ids=ids, decoder_input_ids=ids[:, :5]).logits[..., :vocab]
        b = peft_lm(input_ids=ids, decoder_input_ids=ids[:, :5]).logits[..., :vocab]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    plain = AutoModelForSeq2SeqLM.from_pretrained(backbones / f"tiny-{style}").eval()
    with torch.no_grad():  # the trained tensors changed the function (the comparison is not vacuous)
        assert not torch.allclose(plain(input_ids=ids, decoder_input_ids=ids[:, :5]).logits[..., :vocab], b)


@pytest.mark.parametrize("backbone", ["tiny-bart", "tiny-t5"])
def test_peft_lora_pins_to_single_lora(backbone):
    """peft's LoRA (q, v; r 4, alpha 8, no dropout) + DoRA's --unfreeze_bias = our single_lora (LoRA + every bias):
    same trainable count, outputs and gradients once the LoRA tensors are equal."""
    from vlpet.config import ModelConfig, PETConfig
    from vlpet.models.build import build_model
    from vlpet.pet.trainable import count_parameters

    style = backbone.split("-")[1]
    model_cfg = ModelConfig(backbone=backbone, feat_dim=16, n_boxes=4, dropout=0.0)
    torch.manual_seed(0)
    ours = build_model(model_cfg, PETConfig(method="single_lora", lora_dim=4, lora_alpha=8, lora_dropout=0.0))
    torch.manual_seed(0)
    theirs = build_model(model_cfg, PETConfig(method="peft", unfreeze_bias=True, peft={
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": TARGETS[style],
        "inference_mode": True, "task_type": "SEQ_2_SEQ_LM"}))  # as save_pretrained writes it: trained anyway
    assert count_parameters(ours) == count_parameters(theirs)
    names = {}  # our name -> peft's name
    for name, p in ours.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            names[name] = name.replace("lora_A", "lora_A.default.weight").replace("lora_B", "lora_B.default.weight")
    theirs_params = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(std=0.1)  # B = 0 at init would hide a wrong A
            target = theirs_params[names.get(name, name.replace(".q.weight", ".q.base_layer.weight")
                                             .replace(".v.weight", ".v.base_layer.weight")
                                             .replace("q_proj.weight", "q_proj.base_layer.weight")
                                             .replace("v_proj.weight", "v_proj.base_layer.weight")
                                             .replace("q_proj.bias", "q_proj.base_layer.bias")
                                             .replace("v_proj.bias", "v_proj.base_layer.bias"))]
            target.copy_(p)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (2, 6), generator=g)
    batch = dict(input_ids=ids, vis_feats=torch.randn(2, 4, 16, generator=g), boxes=torch.rand(2, 4, 4, generator=g),
                 labels=torch.randint(3, 100, (2, 3), generator=g))
    a, b = ours(**batch).logits, theirs(**batch).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    a.square().mean().backward()
    b.square().mean().backward()
    theirs_grads = {n: p.grad for n, p in theirs.named_parameters() if p.requires_grad}
    ours_grads = {names.get(n, n.replace("q_proj.bias", "q_proj.base_layer.bias")
                            .replace("v_proj.bias", "v_proj.base_layer.bias")): p.grad
                  for n, p in ours.named_parameters() if p.requires_grad}
    assert ours_grads.keys() == theirs_grads.keys()
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, theirs_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_params_prints_dora_published_percentage(capsys):
    """NVlabs/DoRA's VL-BART image-text run: DoRA on q_proj/v_proj r 128, + every bias and LayerNorm: 5.96 %; the
    LM part is peft's own count and the parts add up to the total."""
    assert vlpet_main(["params", "--peft_config", str(REPO / "scripts/peft/dora.json"), "--backbone", "bart-base"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Trainable param percentage: 5.96% (8838912/148262400)"
    record = json.loads(lines[-1])
    assert sum(p["trainable"] for p in record["parts"].values()) == record["trainable"]
    assert sum(p["total"] for p in record["parts"].values()) == record["total"]


LAUNCHERS = {"dora": (5.96, 5.96), "lora": (4.0, 4.3), "rslora": (4.0, 4.3), "pissa": (4.0, 4.3),
             "adalora": (4.0, 4.3), "vera": (1.0, 1.5), "ia3": (1.0, 1.5)}


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launchers_name_their_config_and_its_budget(name, capsys):
    """scripts/image-text/peft_<name>.sh passes scripts/peft/<name>.json; Params % on BART-base: DoRA's 5.96, ours
    near VL-PET-large's 4.16 (VeRA and (IA)³ cannot get there: their vectors barely grow with the rank)."""
    import subprocess

    done = subprocess.run(["bash", str(REPO / "scripts" / "image-text" / f"peft_{name}.sh"), "20000", "42"],
                          env={**os.environ, "VLPET_PRINT_ARGS": "1"}, capture_output=True, text=True, timeout=30)
    flags = done.stdout.split()
    assert done.returncode == 0 and flags[flags.index("--peft_config") + 1] == f"scripts/peft/{name}.json"
    assert flags[flags.index("--batch_size") + 1] == "300" and flags[flags.index("--seed") + 1] == "42"
    config = str(REPO / f"scripts/peft/{name}.json")
    assert vlpet_main(["params", "--peft_config", config, "--backbone", "bart-base"]) == 0
    percent = json.loads(capsys.readouterr().out.splitlines()[-1])["percent"]
    low, high = LAUNCHERS[name]
    assert low - 0.005 <= percent <= high + 0.005, percent


@pytest.mark.parametrize("content, words", [
    ({"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4}, "prompt-learning"),
    ({"peft_type": "LORA", "r": 4, "target_modules": ["nothing_here"]}, "cannot apply"),
    ({"peft_type": "NOPE"}, "peft rejects"),
    ({"r": 4}, "peft_type"),
    ({"peft_type": "LORA", "_vlpet": {"unfreeze_everything": True}}, "_vlpet"),
    ("{not json", "not a JSON"),
])
def test_bad_config_is_one_line(data, tmp_path, capsys, content, words):  # noqa: F811
    path = tmp_path / "adapter_config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    args = (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok-bart'} --datasets_root {data / 'data'} "
            f"--feat_dim 32 --epochs 1 --batch_size 6 --output {tmp_path / 'run'} --train_topk 6 --valid_topk 2 "
            f"--tasks nlvr --peft_config {path}").split()
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if not line.startswith("warning:")]  # the --from_scratch warning
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_missing_peft_config_is_one_line_before_torch(tmp_path, capsys):
    from vlpet.commands.train import main as cli_main

    args = ["--backbone", "tiny-bart", "--peft_config", str(tmp_path / "nope"), "--output", str(tmp_path / "r")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "--peft_config" in err and "no such file" in err and len(err.strip().splitlines()) == 1


def test_peft_config_with_a_method_flag_is_refused(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"peft_type": "IA3", "target_modules": ["v_proj"], "feedforward_modules": []}))
    args = ["--backbone", "tiny-bart", "--use_lora", "--peft_config", str(path), "--output", str(tmp_path / "r")]
    assert train_main(args) == 2
    assert "--peft_config replaces the method flags" in capsys.readouterr().err


def test_push_uploads_the_export_and_a_repo_id_loads(data, backbones, tmp_path, monkeypatch, capsys):  # noqa: F811
    """push: HfApi.create_repo / upload_folder at the boundary see the export folder; --load owner/name takes the
    snapshot huggingface_hub gives."""
    import huggingface_hub

    config = tmp_path / "c.json"
    config.write_text(json.dumps(peft_config("ia3", "bart")))
    run = tmp_path / "run"
    assert train_main(argv(data, backbones, "bart", config, run, "--epochs 1")) == 0
    capsys.readouterr()
    calls = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, **kw):
        calls["repo"] = (repo_id, private, exist_ok)

    def upload_folder(self, repo_id, folder_path, commit_message="", **kw):
        calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        calls["snapshot"] = tmp_path / "snapshot"
        import shutil

        shutil.copytree(folder_path, calls["snapshot"])
        return type("Info", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert vlpet_main(["push", str(run / "LAST"), "me/vlpet-ia3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "https://hub.example/me/vlpet-ia3/commit/1"
    assert calls["repo"] == ("me/vlpet-ia3", False, True)
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "pet_weights.safetensors",
            "pet_config.json", "vlpet_config.json"} <= set(calls["files"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(calls["snapshot"]))
    test = tmp_path / "test"
    assert train_main(argv(data, backbones, "bart", config, test, "--epochs 0 --load me/vlpet-ia3")) == 0
    assert f"loaded weights from {calls['snapshot']}" in capsys.readouterr().out


def test_mtl_lora_follows_the_published_layer_and_trains(data, tmp_path, capsys):  # noqa: F811
    """MTL-LoRA's output is their mLoRALinear.forward (bmm form, written out here) for each task's row; the
    published launcher's flags train a tiny BART end to end; params counts their VL-BART script."""
    from vlpet.config import ModelConfig, PETConfig
    from vlpet.models.build import build_model

    cfg = PETConfig(method="mtl_lora", lora_dim=4, lora_alpha=16.0, mtl_b_num=2, mtl_lambda_num=4,
                    mtl_temperature=0.8)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16, n_boxes=4), cfg)
    layer = model.lm.model.encoder.layers[0].self_attn.q_proj
    with torch.no_grad():
        layer.lora_B.normal_(std=0.1)
        layer.lora_lambdas.add_(0.1 * torch.randn_like(layer.lora_lambdas))
    x = torch.randn(3, 5, layer.in_features)
    for row, task in enumerate(cfg.tasks):
        model.current_task = task
        index = torch.full((3,), row)
        w = torch.softmax(layer.lora_B_w / 0.8, dim=-1)
        task_b = (w @ layer.lora_B.view(2, -1)).reshape(-1, layer.out_features, 4)[index]
        after = torch.bmm(torch.bmm(x, layer.lora_A[torch.zeros_like(index)].transpose(-2, -1)),
                          layer.lora_lambdas[index].transpose(-2, -1))
        base = torch.nn.functional.linear(x, layer.weight, layer.bias)
        expected = base + torch.bmm(after, task_b.transpose(-2, -1)) * 4  # alpha / r = 16 / 4
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)

    import subprocess

    done = subprocess.run(["bash", str(REPO / "scripts/image-text/mtl_lora.sh"), "20000", "42"], check=False,
                          env={**os.environ, "VLPET_PRINT_ARGS": "1"}, capture_output=True, text=True, timeout=30)
    flags = done.stdout.split()[done.stdout.split().index("--use_mlora"):]
    flags = [f for f in flags if f not in ("--seed", "42")] + ["--lora_dim", "4"]
    out = tmp_path / "run"
    common = (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok-bart'} --datasets_root {data / 'data'} "
              f"--feat_dim 32 --epochs 1 --batch_size 6 --n_boxes 36 --downsample --output {out} --seed 3 "
              f"--no_progress --train_topk 6 --valid_topk 2 --tasks gqa,nlvr").split()
    assert train_main(common + flags) == 0
    config = json.loads((out / "config.json").read_text())["pet"]
    assert (config["method"], config["mtl_b_num"], config["mtl_temperature"], config["lora_alpha"]) == \
        ("mtl_lora", 2, 0.8, 16.0)
    saved = load_file(str(out / "LAST" / "pet_weights.safetensors"))
    assert {k.rsplit(".", 1)[-1] for k in saved if ".layers." in k} == {"lora_A", "lora_lambdas", "lora_B", "lora_B_w"}
    capsys.readouterr()
    assert vlpet_main(["params", "--method", "mtl_lora", "--backbone", "bart-base"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "Trainable param percentage: 5.09% (7481376/147055392)"


def test_adalora_regulariser_is_peft_own():
    """TunerHooks.loss adds what peft's AdaLoraModel.forward adds to a loss (our encoder bypasses that forward)."""
    from vlpet.config import ModelConfig, PETConfig
    from vlpet.models.build import build_model
    from vlpet.pet.peft_bridge import tuner_hooks

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="tiny-bart", feat_dim=16, n_boxes=4, dropout=0.0), PETConfig(
        method="peft", peft={**peft_config("adalora", "bart"), "total_step": 10, "orth_reg_weight": 0.3}))
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_" in name:
                p.normal_()
    ids = torch.randint(3, 100, (2, 6))
    tuner = model.peft_tuner
    with_reg = tuner(input_ids=ids, labels=ids).loss
    plain = model.lm(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(tuner_hooks(model).loss(plain), with_reg)
    assert with_reg - plain > 0


def test_export_of_a_published_method_loads_back(data, tmp_path, capsys):  # noqa: F811
    """A VL-PET run exports without a peft adapter (library vlpet); --load FOLDER --epochs 0 tests the same weights."""
    from test_trainer import argv as vlpet_argv

    run, again, export = tmp_path / "run", tmp_path / "again", tmp_path / "export"
    assert train_main(vlpet_argv(data, run, extra="--tasks nlvr --train_topk 4")) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"]
    assert vlpet_main(["export", str(run), str(export)]) == 0
    files = {p.name for p in export.iterdir()}
    assert "adapter_config.json" not in files and {"README.md", "pet_weights.safetensors"} <= files
    assert "library_name: vlpet" in (export / "README.md").read_text()
    assert vlpet_main(["export", str(run), str(export)]) == 2  # never overwritten
    capsys.readouterr()
    assert train_main(vlpet_argv(data, again, extra=f"--tasks nlvr --train_topk 4 --epochs 0 --load {export}")) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test"] == trained


@pytest.mark.parametrize("name", ["adalora", "mtl_lora"])
def test_bench_peft_methods_one_method(name, monkeypatch):
    """bench/peft_methods.py's per-method measurement on a tiny backbone (in process): the documented keys."""
    import argparse
    import importlib

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    peft_methods = importlib.import_module("peft_methods")

    row = peft_methods.one(argparse.Namespace(one=name, backbone="tiny-bart", batch=1, steps=1, warmup=0,
                                              threads=None, device="cpu"))
    assert row["method"] == name and row["trainable_params"] > 0 and row["step_s_median"] > 0 and row["peak_rss_mb"]
