"""``python -m vlpet predict`` on a tiny run trained here (issue 15 item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import pytest

from vlpet.__main__ import main
from test_trainer import argv, data  # noqa: F401  (data: the trainer tests' synthetic data fixture)

N = 3  # records per task compared with the evaluation pipeline


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):  # noqa: F811
    from vlpet.commands.train import main as train_main

    out = tmp_path_factory.mktemp("predict") / "run"
    assert train_main(argv(data, out, "tiny-bart", "large")) == 0
    return out


def _pipeline(data: Path, run: Path, task: str) -> tuple[list[dict], list]:
    """The first N validation records of ``task`` as predict inputs, and what the evaluation pipeline predicts."""
    from vlpet.data.layout import DataLayout, h5_path
    from vlpet.data.multitask import build_datasets, make_loader, task_prompts
    from vlpet.predict import Predictor
    from vlpet.tasks import get_task
    from vlpet.train.device import DeviceLoader

    predictor = Predictor.load(run / "LAST", None, None, "cpu")
    dataset = build_datasets(DataLayout(data / "data"), predictor.tokenizer, "val", [task], task_prompts(), N)[task]
    runner = get_task(task, predictor.run_args["num_beams"], predictor.run_args["gen_max_length"])  # as validation
    loader = DeviceLoader(make_loader(dataset, 2, False), torch.device("cpu"))  # as the trainer hands batches over
    preds = runner.predict(predictor.model, loader, predictor.tokenizer)
    records, expected = [], []
    for datum in dataset.data:
        if task == "nlvr":
            record = {"features": str(h5_path(dataset.folder, datum["img0"])),
                      "features2": str(h5_path(dataset.folder, datum["img1"])), "statement": datum["sent"]}
            expected.append({1: "true", 0: "false"}[preds[datum["identifier"]]])
        else:
            record = {"features": str(h5_path(dataset.folder, datum["img_id"]))}
            if task == "vqa":
                record["question"] = datum["sent"]
            expected.append(preds[datum["question_id"] if task == "vqa" else datum["img_id"]])
        records.append(record)
    return records, expected


@pytest.mark.parametrize("task", ["vqa", "caption", "nlvr"])
def test_predict_matches_the_evaluation_pipeline(data, run, tmp_path, capsys, task):  # noqa: F811
    """--batch over validation records gives the evaluation pipeline's predictions; one record alone the same."""
    records, expected = _pipeline(data, run, task)
    batch = tmp_path / "in.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run / "LAST"), "--task", task, "--batch", str(batch),
                 "--batch_size", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["prediction"] for line in lines] == expected
    assert [line["line"] for line in lines] == [1, 2, 3]
    first = records[0]
    single = ["--features", first["features"]]
    if task == "nlvr":
        single += ["--features2", first["features2"], "--statement", first["statement"]]
    elif task == "vqa":
        single += ["--question", first["question"]]
    assert main(["predict", "--checkpoint", str(run), "--task", task, *single]) == 0  # a run folder: its LAST
    assert capsys.readouterr().out == f"{expected[0]}\n"
    assert main(["predict", "--checkpoint", str(run), "--task", task, "--onednn", *single]) == 0  # same answer
    assert capsys.readouterr().out == f"{expected[0]}\n"


def test_npy_features_equal_the_h5_file(data, run, tmp_path, capsys):  # noqa: F811
    from vlpet.predict import read_features

    records, expected = _pipeline(data, run, "vqa")
    grid = read_features(Path(records[0]["features"]), 32)
    np.save(tmp_path / "img.npy", grid)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run / "LAST"), "--task", "vqa", "--features",
                 str(tmp_path / "img.npy"), "--question", records[0]["question"]]) == 0
    assert capsys.readouterr().out == f"{expected[0]}\n"


def _error(capsys, *args: str) -> str:
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    return err


def test_bad_inputs_are_one_clear_error(run, tmp_path, capsys):
    best = str(run / "LAST")
    np.save(tmp_path / "bad.npy", np.zeros((36, 32), dtype=np.float32))
    assert "needs exactly one of --image2 / --features2" in _error(
        capsys, "--checkpoint", best, "--task", "nlvr", "--features", "x.h5", "--statement", "s")
    assert "needs a question" in _error(capsys, "--checkpoint", best, "--task", "vqa", "--features", "x.h5")
    assert "features file not found: nope.h5" in _error(
        capsys, "--checkpoint", best, "--task", "caption", "--features", "nope.h5")
    assert "shape (36, 32), expected (49, 32)" in _error(
        capsys, "--checkpoint", best, "--task", "caption", "--features", str(tmp_path / "bad.npy"))
    assert "checkpoint config not found" in _error(
        capsys, "--checkpoint", str(tmp_path), "--task", "caption", "--features", "x.h5")
    (tmp_path / "b.jsonl").write_text('{"features": "x.h5"}\nnot json\n')
    assert "line 2 is not JSON" in _error(capsys, "--checkpoint", best, "--task", "caption", "--batch",
                                          str(tmp_path / "b.jsonl"))


def test_missing_backbone_weights_name_the_backbone(run, tmp_path, capsys):
    """Backbone weights that are neither a folder nor a hub id in the cache: one error naming the backbone."""
    missing = str(tmp_path / "no-such-backbone")
    err = _error(capsys, "--checkpoint", str(run / "LAST"), "--task", "caption", "--features", "x.h5",
                 "--backbone", missing)
    assert f"no backbone weights for '{missing}'" in err


def test_image_without_the_extractor_or_clip_weights_is_one_clear_error(run, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "photo.jpg")
    err = _error(capsys, "--checkpoint", str(run / "LAST"), "--task", "caption", "--image",
                 str(tmp_path / "photo.jpg"))
    assert "CLIP grid extractor" in err or "needs CLIP weights" in err


def test_image_with_random_clip_weights(data, tmp_path):  # noqa: F811
    """A photo through the CLIP extractor (random weights) into a 2048-feature tiny checkpoint: a caption, and the
    same caption as predicting from the extractor's grid saved as .npy."""
    image = pytest.importorskip("vlpet.features.image")
    from PIL import Image

    from vlpet.config import ModelConfig, PETConfig, to_dict
    from vlpet.models.build import build_model
    from vlpet.predict import FeatureSource, Predictor
    from vlpet.train.checkpoint import save_checkpoint
    from vlpet.train.data import seed_everything

    model_cfg = ModelConfig(backbone="tiny-bart", feat_dim=2048, vocab_size=1200)
    pet_cfg = PETConfig(gate="large", adapter_dim=16, gate_dim=16, vpa_dim=16)
    seed_everything(5)
    model = build_model(model_cfg, pet_cfg)
    args = {"seed": 5, "tokenizer": str(data / "tok-bart"), "num_beams": 2, "gen_max_length": 8}
    save_checkpoint(tmp_path / "BEST", model, {"model": to_dict(model_cfg), "pet": to_dict(pet_cfg), "args": args})
    Image.new("RGB", (96, 64), (20, 160, 90)).save(tmp_path / "photo.jpg")
    predictor = Predictor.load(tmp_path / "BEST", None, None, "cpu")
    features = FeatureSource(2048, None, False, "cpu")
    from vlpet.features.resnet import ModifiedResNet

    torch.manual_seed(0)  # a random, shallow CLIP trunk of the real width (2048 channels)
    features._extractor = image.GridExtractor(ModifiedResNet(layers=(1, 1, 1, 1), width=64), "cpu")
    caption = predictor.predict("caption", [{"image": str(tmp_path / "photo.jpg")}], features)[0]
    grid = features.grid({"image": str(tmp_path / "photo.jpg")}, "").detach().numpy()
    np.save(tmp_path / "photo.npy", grid)
    assert predictor.predict("caption", [{"features": str(tmp_path / "photo.npy")}], features) == [caption]
