"""The synthetic video tree: the VALUE layout, loadable by every video dataset, with labels that are a function of
the features (decoded here from the npz files alone), and the ``--video`` command-line option."""

import json

import numpy as np
import pytest

from vlpet.synth.__main__ import main
from vlpet.synth.image import COLORS, SHAPES
from vlpet.synth.video import write_video_tree
from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.video import TASKS, VideoLayout, build_video_datasets, resize_frames
from vlpet.synth.video import VideoWorld, video_synth_words
from vlpet.metrics.video import caption_predictions, score_video_qa, write_value_submission

SEED = 5
ANN_FILES = {
    "tv_subtitles.jsonl", "how2_subtitles.jsonl", "yc2_subtitles.jsonl",
    "tvqa/tvqa_train.jsonl", "tvqa/tvqa_val.jsonl", "tvqa/tvqa_test_public.jsonl", "tvqa/tvqa_test_release.jsonl",
    "how2qa/how2qa_train_release.jsonl", "how2qa/how2qa_val_release.jsonl",
    "how2qa/how2qa_test_public_release.jsonl",
    "tvc/tvc_train_release.jsonl", "tvc/tvc_val_release.jsonl", "tvc/tvc_test_release.jsonl",
    "yc2c/yc2c_train_release.jsonl", "yc2c/yc2c_val_release.jsonl", "yc2c/yc2c_test_release.jsonl",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    counts = write_video_tree(root, n_train=6, n_val=3, n_test=2, seed=SEED)
    assert counts == {"tv": 6 + 3 + 2 + 1 + 6 + 3 + 2, "how2": 11, "yc2": 11}
    return root


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("bart", video_synth_words())


def test_exact_tree(root):
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert {f[len("video/ann/"):] for f in files if f.startswith("video/ann/")} == ANN_FILES
    folders = {str(p.parent.relative_to(root)) for p in root.rglob("*.npz")}
    assert folders == {f"video/vis_features/{s}/clip-vit" for s in ("tv", "how2", "yc2")}
    assert all(f.startswith("video/") for f in files)
    feats = np.load(next(root.rglob("*.npz")))
    assert feats.files == ["features"] and feats["features"].ndim == 2 and feats["features"].shape[1] == 512


def decode(world, feats):
    """The object a video shows: the colour and shape whose pattern channels are strongest over time."""
    peak = resize_frames(feats).numpy().max(0)
    colour = max(COLORS, key=lambda c: peak[world.patterns[c] > 0].mean())
    shape = max(SHAPES, key=lambda s: peak[world.patterns[s] > 0].mean())
    return f"{colour} {shape}"


def test_labels_follow_the_features_and_every_split_loads(root, tok):
    world = VideoWorld(np.random.default_rng(SEED))  # the patterns are the first draws of the seed
    layout = VideoLayout(root)
    lengths = set()
    for phase in ("train", "val", "test"):
        datasets = build_video_datasets(layout, tok, phase)
        assert list(datasets) == list(TASKS)
        for task, ds in datasets.items():
            assert len(ds) > 0 and ds.labelled == (phase != "test")
            batch = ds.collate([ds[k] for k in range(len(ds))])
            assert batch["vis_feats"].shape == (len(ds), 64, 512) and ("target_ids" in batch) == ds.labelled
            assert tok.unk_token_id not in batch["input_ids"]
            for datum in ds.data:
                raw = np.load(layout.feature_file(task, datum["vid_name"]))["features"]
                lengths.add(len(raw) > 64)
                shown = decode(world, raw)
                if task in ("tvqa", "how2qa"):
                    names = [datum[f"a{k}"] for k in range(4 if task == "how2qa" else 5)]
                    assert shown in names
                    if "answer" in datum:
                        assert datum["answer"] == f"a{names.index(shown)}"
                elif "answer" in datum:
                    assert shown in datum["answer"]
    assert lengths == {True, False}  # both the pad and the pool cases occur


def test_tvqa_test_release_repeats_test_public(root):
    public = [json.loads(x)["qid"] for x in (root / "video/ann/tvqa/tvqa_test_public.jsonl").read_text().split("\n") if x]
    release = [json.loads(x)["qid"] for x in (root / "video/ann/tvqa/tvqa_test_release.jsonl").read_text().split("\n")
               if x]
    assert release[:len(public)] == public and len(release) > len(public)


def test_oracle_predictions_score_and_submit(root, tok, tmp_path):
    layout = VideoLayout(root)
    val = build_video_datasets(layout, tok, "val", ["tvqa"])["tvqa"]
    answers, types = val.ground_truth()
    assert score_video_qa(dict(answers), answers, types)["score"] == 100.0
    test = build_video_datasets(layout, tok, "test", ["tvc"])["tvc"]
    batch = test.collate([test[k] for k in range(len(test))])
    path = write_value_submission("tvc", caption_predictions(batch, ["x"] * len(test)), tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["clip_id"] for line in lines] == [d["clip_id"] for d in test.data]


def test_command_line(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "--video", "only", "--n-train", "2", "--n-val", "1", "--n-test", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["npz_files"] == {"tv": 2 + 1 + 1 + 1 + 2 + 1 + 1, "how2": 4, "yc2": 4} and "h5_files" not in out
    assert [p.name for p in tmp_path.iterdir()] == ["video"]
