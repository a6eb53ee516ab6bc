"""The video-text trainer on the synthetic VALUE tree (issue 7): train, validate, BEST on the 4-task average, VALUE
submission files for the unlabelled test splits, the published video launchers, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vlpet.train.loop import BestTracker
from vlpet.commands.train import main as train_main
from vlpet_flags import GATES, VLPET

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ("tvqa_test_predictions.json", "how2qa_test_public_predictions.json", "tvc_test_predictions.jsonl",
               "yc2c_test_predictions.jsonl")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vlpet.data.tokenizer import build_tokenizer
    from vlpet.synth.video import video_synth_words, write_video_tree

    root = tmp_path_factory.mktemp("video-trainer")
    write_video_tree(root / "data", n_train=12, n_val=4, n_test=4, seed=0, feat_dim=32)
    for style in ("bart", "t5"):
        build_tokenizer(style, video_synth_words()).save_pretrained(root / f"tok-{style}")
    return root


def argv(data: Path, out: Path, backbone: str = "tiny-bart", tasks: str = "tvqa,how2qa,tvc,yc2c", epochs: int = 2,
         method: str = VLPET + " " + GATES["large"],
         extra: str = "") -> list[str]:
    style = backbone.split("-")[1]
    return (f"--backbone {backbone} --from_scratch --tokenizer {data / f'tok-{style}'} --datasets_root {data / 'data'} "
            f"--feature ViT --feat_dim 32 --n_boxes 64 --downsample --epochs {epochs} --batch_size 4 --lr 1e-3 "
            f"--num_beams 5 --use_tasks_prompts --tasks {tasks} --output {out} --seed 3 --no_progress "
            f"--valid_topk 4 {method} {extra}").split()


def test_video_run_validates_selects_best_and_writes_submissions(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(argv(data, out)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Trainable param percentage: ")
    final = json.loads(lines[-1])
    tasks = {"tvqa", "how2qa", "tvc", "yc2c"}
    assert set(final["val"]) == tasks and set(final["best_val"]) == tasks | {"avg"}
    records = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "train" in r]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert set(epochs[0]["train"]) >= {f"loss_{t}" for t in tasks}
    for r in epochs:
        assert r["best"]["avg"] == max(sum(e["val"][t] for t in tasks) / 4 for e in epochs[:r["epoch"] + 1])
    # BEST holds only trained weights and is the epoch of the best average; LAST is the resumable one.
    assert load_file(str(out / "BEST" / "pet_weights.safetensors")).keys() == \
        load_file(str(out / "LAST" / "pet_weights.safetensors")).keys()
    assert (out / "LATEST").read_text().strip() == "LAST"
    # Submission files in the VALUE formats, from LAST and again from BEST, covering every test item.
    for name in SUBMISSIONS:
        stem, ext = name.rsplit(".", 1)
        for path in (out / name, out / f"{stem}_best_avg_valid_model.{ext}"):
            assert path.is_file(), path
    qa = json.loads((out / SUBMISSIONS[0]).read_text())
    test_qids = [json.loads(line)["qid"] for split in ("test_public", "test_release")
                 for line in (data / "data/video/ann/tvqa" / f"tvqa_{split}.jsonl").read_text().splitlines()]
    assert {int(k) for k in qa} == set(test_qids[:4])  # --valid_topk 4 keeps the first 4 test items too
    assert all(v in range(5) for v in qa.values())
    tvc = [json.loads(line) for line in (out / SUBMISSIONS[2]).read_text().splitlines()]
    assert tvc and all(set(r) == {"vid_name", "clip_id", "ts", "descs"} for r in tvc)
    yc2c = [json.loads(line) for line in (out / SUBMISSIONS[3]).read_text().splitlines()]
    assert yc2c and all(set(r) == {"vid_name", "clip_id", "descs"} for r in yc2c)


def test_video_subset_on_t5_has_no_selection(data, tmp_path, capsys):
    """Without the full "tvqa,how2qa,tvc,yc2c" string there is no average and no BEST (the official condition)."""
    out = tmp_path / "run"
    t5 = VLPET + " " + GATES["small"] + " --use_encoder_multihead_up_zero_init"
    assert train_main(argv(data, out, "tiny-t5", "tvqa,tvc", epochs=1, method=t5)) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(final["val"]) == {"tvqa", "tvc"} and "avg" not in final["best_val"]
    assert not (out / "BEST").exists() and set(final["test_predictions"]) == {"LAST"}
    assert (out / "tvqa_test_predictions.json").is_file() and (out / "tvc_test_predictions.jsonl").is_file()
    assert not (out / "how2qa_test_public_predictions.json").exists()


def test_video_full_finetuning_learns(data, tmp_path, capsys):
    """A short run really trains: the loss of every task falls (full fine-tuning moves the frozen-flat logits)."""
    out = tmp_path / "run"
    assert train_main(argv(data, out, epochs=4, method="--unfreeze_language_model", extra="--lr 3e-3")) == 0
    epochs = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    first, last = epochs[0]["train"], epochs[-1]["train"]
    for task in ("tvqa", "how2qa", "tvc", "yc2c"):
        assert last[f"loss_{task}"] < 0.8 * first[f"loss_{task}"], (task, first, last)


def test_mixed_image_and_video_tasks_is_one_clear_error(data, tmp_path, capsys):
    assert train_main(argv(data, tmp_path / "run", tasks="vqa,tvqa")) == 2
    err = capsys.readouterr().err
    assert "mixes video" in err and "Traceback" not in err
    assert train_main(argv(data, tmp_path / "run", tasks="tvqa,ocr")) == 2
    assert "ocr" in capsys.readouterr().err
    assert not (tmp_path / "run" / "LAST").exists()


def test_missing_video_tree_names_the_path(data, tmp_path, capsys):
    args = argv(data, tmp_path / "run")
    args[args.index("--datasets_root") + 1] = str(tmp_path / "nowhere")
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_default_run_folder_is_multitask_video(data, tmp_path, monkeypatch):
    from vlpet.flags.parse import make_parser
    from vlpet.train.main import run_dir_for

    args = make_parser().parse_args(["--run_name", "x", "--tasks", "tvqa"])
    assert run_dir_for(args, "bart", video=True) == Path("snap/VLBart_multitask_video/x")
    assert run_dir_for(args, "t5", video=False) == Path("snap/VLT5_multitask/x")


def test_best_tracker_follows_the_official_rule_and_round_trips():
    tasks = "tvqa,how2qa,tvc,yc2c"
    tracker = BestTracker(tasks)
    assert tracker.update(0, {"tvqa": 10, "how2qa": 10, "tvc": 10, "yc2c": 10})  # epoch 0 is always best
    assert not tracker.update(1, {"tvqa": 20, "how2qa": 0, "tvc": 0, "yc2c": 10})  # avg 7.5 < 10
    assert tracker.best["tvqa"] == 20 and tracker.best_epoch["tvqa"] == 1 and tracker.best_epoch["avg"] == 0
    resumed = BestTracker(tasks, json.loads(json.dumps(tracker.state())))
    assert resumed.update(2, {"tvqa": 30, "how2qa": 30, "tvc": 30, "yc2c": 30})
    assert resumed.best_epoch == {"tvqa": 2, "how2qa": 2, "tvc": 2, "yc2c": 2, "avg": 2}
    image = BestTracker("vqa,gqa")
    assert not image.update(0, {"vqa": 1.0, "gqa": 2.0}) and "avg" not in image.best


@pytest.mark.parametrize("script,positional", [("VL-PET-large.sh", "29541 16 4 16 16 1e-3 1 42"),
                                               ("bitfit.sh", "29542 1e-3 1 43 4")])
def test_published_video_launcher_runs(data, tmp_path, script, positional):
    """A video launcher with its published positional arguments (PORT ... LR EPOCHS SEED), overrides after them."""
    out = tmp_path / "run"
    extra = (f"--backbone tiny-bart --from_scratch --tokenizer {data / 'tok-bart'} --datasets_root {data / 'data'} "
             f"--feat_dim 32 --batch_size 4 --train_topk 4 --valid_topk 2 --num_workers 0 --num_beams 2 "
             f"--output {out} --no_progress")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "video-text" / script), *positional.split(), *extra.split()],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["seed"] == int(positional.split()[-2 if script == "bitfit.sh" else -1])
    assert config["args"]["tasks"] == "tvqa,how2qa,tvc,yc2c" and config["model"]["n_boxes"] == 64
    assert (out / "BEST").is_dir() and (out / "tvqa_test_predictions_best_avg_valid_model.json").is_file()


def test_every_video_launcher_prints_usage_without_arguments():
    for script in sorted((ROOT / "scripts" / "video-text").glob("*.sh")):
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "usage:" in done.stderr, script.name
