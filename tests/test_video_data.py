"""Video loaders on hand-made VALUE-layout trees: the exact official text, ids, features and targets
(pipeline spec §1.4, §2.5-§2.7, §9 items 7-9), the batch dict, and DataErrors naming the path."""

import json
import math

import numpy as np
import pytest
import torch

from vlpet.data.layout import DataError
from vlpet.data.multitask import MultitaskLoader
from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.video import (SPLITS, How2QADataset, TVCDataset, TVQADataset, VideoLayout, YC2CDataset,
                              build_video_datasets, build_video_loaders, resize_frames, video_task_prompts)

TV = "friends_s01e01_seg02_clip_00"
TV_EMPTY = "castle_s01e02_seg02_clip_01"
TV_LONG = "house_s01e03_seg02_clip_02"
HOW2 = "abc123_10_30"
YC2 = "yc2_vid_7"
D = 512
WORDS = ["[", "]", "([", "])", "(", ")", ".", ",", "-", ":", "?", "Subs", "Q", "TS", "Choices", "a0", "a1", "a2", "a3",
         "a4", "tvqa", "how2qa", "tvc", "yc2c", "Hi", "there", "Where", "is", "it", "Who", "Ross", "Rachel",
         "Monica", "Dr", "Geller", "Joey", "word", "Mix", "the", "eggs", "what", "next", "stir", "pan", "a", "man",
         "walks", "in", "20", "16", "25", "12", "35", "73", "40", "9", "3", "0", "5"]
TVQA_TEXT = ("[Subs] Hi there. Where is it? [Q] Who is there? [TS] (20.16-25.12) "
             "[Choices] a0: Ross. a1: Rachel. a2: Monica. a3: Dr. Geller. a4: Joey.")
HOW2QA_TEXT = "[Subs] Mix the eggs. [Q] what next? [TS] (3.0-5.0) [Choices] a0: stir. a1: pan. a2: Ross. a3: Joey."
TVC_TEXT = "[Subs] Hi there. Where is it? [TS] ([35.73, 40.9])"
YC2C_TEXT = "[Subs] Mix the eggs."


def write_jsonl(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def write_npz(root, source, vid, feats):
    folder = root / "video/vis_features" / source / "clip-vit"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{vid}.npz", features=feats)


def frames(n, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(dtype)


def qa_entry(vid, qid, answer=None, show="Friends"):
    entry = {"a0": "Ross. ", "a1": "Rachel", "a2": "...Monica", "a3": "Dr. Geller.", "a4": " Joey..",
             "q": " Who is there? ", "qid": qid, "show_name": show, "ts": "20.16-25.12", "vid_name": vid}
    if answer is not None:
        entry["answer_idx"] = answer
    return entry


@pytest.fixture
def root(tmp_path):
    ann = tmp_path / "video/ann"
    write_jsonl(ann / "tv_subtitles.jsonl", [
        {"vid_name": TV, "sub": [{"text": " Hi there. ", "start": 0.5, "end": 1.2},
                                 {"text": "Where is it?", "start": 1.3, "end": 2.0}]},
        {"vid_name": TV_EMPTY, "sub": []},
        {"vid_name": TV_LONG, "sub": [{"text": " ".join(["word"] * 700), "start": 0, "end": 9}]},
    ])
    write_jsonl(ann / "how2_subtitles.jsonl", [{"vid_name": HOW2, "sub": [{"text": "Mix the eggs.", "start": 0,
                                                                            "end": 1}]}])
    write_jsonl(ann / "yc2_subtitles.jsonl", [{"vid_name": YC2, "sub": [{"text": "Mix the eggs. ", "start": 0,
                                                                          "end": 1}]}])
    write_jsonl(ann / "tvqa/tvqa_val.jsonl", [qa_entry(TV, 11, 3), qa_entry(TV_EMPTY, 12, 0, "Castle"),
                                             qa_entry(TV_LONG, 13, 4, "House M.D.")])
    write_jsonl(ann / "tvqa/tvqa_test_public.jsonl", [qa_entry(TV, 21)])
    write_jsonl(ann / "tvqa/tvqa_test_release.jsonl", [qa_entry(TV, 21), qa_entry(TV_EMPTY, 22)])
    write_jsonl(ann / "how2qa/how2qa_train_release.jsonl", [
        {"a0": "stir", "a1": "pan.", "a2": "Ross", "a3": "Joey", "answer_idx": 1, "q": "what next?", "qid": 5,
         "ts": "3.0-5.0", "vid_name": HOW2}])
    write_jsonl(ann / "tvc/tvc_val_release.jsonl", [
        {"vid_name": TV, "duration": 61.5, "ts": [35.73, 40.9], "clip_id": 901,
         "descs": [{"desc": "a man walks in", "desc_id": 7001, "type": "v"},
                   {"desc": "Ross walks in", "desc_id": 7002, "type": "vt"}]}])
    write_jsonl(ann / "tvc/tvc_test_release.jsonl", [
        {"vid_name": TV_EMPTY, "duration": 10.0, "ts": [3, 5], "clip_id": 902}])
    write_jsonl(ann / "yc2c/yc2c_train_release.jsonl", [
        {"vid_name": YC2, "duration": 9.0, "ts": [1.0, 2.0], "clip_id": 3,
         "descs": [{"desc": "stir the eggs", "desc_id": 31, "type": "v"}]}])
    write_jsonl(ann / "yc2c/yc2c_test_release.jsonl", [{"vid_name": YC2, "duration": 9.0, "ts": [1.0, 2.0],
                                                         "clip_id": 4}])
    write_npz(tmp_path, "tv", TV, frames(100))  # pooled
    write_npz(tmp_path, "tv", TV_EMPTY, frames(10, np.float16, seed=1))  # padded
    write_npz(tmp_path, "tv", TV_LONG, frames(64, seed=2))  # unchanged
    write_npz(tmp_path, "how2", HOW2, frames(65, seed=3))
    write_npz(tmp_path, "yc2", YC2, frames(3, seed=4))
    return tmp_path


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("bart", WORDS)


def encode(tok, text, max_length):
    return tok.encode(text, max_length=max_length, truncation=True)


def reference_pool(x, length):
    """Adaptive max pooling by its definition: output row i is the max of rows floor(i*T/L) .. ceil((i+1)*T/L)-1."""
    n = len(x)
    return np.stack([x[math.floor(i * n / length):math.ceil((i + 1) * n / length)].max(0) for i in range(length)])


def test_resize_hand_cases():
    x = np.array([[1.0, 6.0], [5.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert resize_frames(x, 2).tolist() == [[5.0, 6.0], [5.0, 4.0]]  # windows rows 0-1 and 1-2
    assert resize_frames(x, 5).tolist() == [[1.0, 6.0], [5.0, 2.0], [3.0, 4.0], [0.0, 0.0], [0.0, 0.0]]
    assert resize_frames(x, 3).tolist() == x.tolist()
    long = frames(100)
    assert np.array_equal(resize_frames(long, 64).numpy(), reference_pool(long, 64))
    assert resize_frames(frames(10, np.float16), 64).dtype == torch.float32


def test_tvqa_text_ids_features_targets(root, tok):
    ds = TVQADataset(VideoLayout(root), "val", tok)
    assert [d["question_id"] for d in ds.data] == [11, 12, 13]
    ex = ds[0]
    assert ex["meta"]["sents"] == TVQA_TEXT
    assert ex["input_ids"] == encode(tok, TVQA_TEXT + " tvqa: ", 600)
    # literal ids of the start: <s> [ Subs ] Hi there . Where is it ? [ Q ] ...
    vocab = tok.get_vocab()
    assert ex["input_ids"][:9] == [0] + [vocab[w] for w in ["[", "Subs", "]", "Hi", "there", ".", "Where", "is"]]
    assert ex["input_ids"][-3:] == [vocab["tvqa"], vocab[":"], 2]
    assert ex["target_ids"] == encode(tok, "a3", 20) == [0, vocab["a3"], 2]
    assert ex["meta"]["answers"] == "a3" and ex["meta"]["types"] == "Friends"
    raw = np.load(root / f"video/vis_features/tv/clip-vit/{TV}.npz")["features"]
    assert torch.equal(ex["vis_feats"], torch.from_numpy(reference_pool(raw, 64)))
    # no subtitles: "[Subs] " then " [Q]" (two spaces, as the official join gives); 10 fp16 frames zero-padded
    empty = ds[1]
    assert empty["meta"]["sents"] == "[Subs]  " + TVQA_TEXT[len("[Subs] Hi there. Where is it? "):]
    raw = np.load(root / f"video/vis_features/tv/clip-vit/{TV_EMPTY}.npz")["features"].astype(np.float32)
    assert torch.equal(empty["vis_feats"][:10], torch.from_numpy(raw)) and not empty["vis_feats"][10:].any()


def test_600_token_truncation_drops_question_and_prompt(root, tok):
    ds = TVQADataset(VideoLayout(root), "val", tok)
    ex = ds[2]
    vocab = tok.get_vocab()
    assert len(ex["input_ids"]) == 600 and ex["input_ids"][0] == 0 and ex["input_ids"][-1] == 2
    assert ex["input_ids"][1:4] == [vocab["["], vocab["Subs"], vocab["]"]]
    assert set(ex["input_ids"][4:-1]) == {vocab["word"]}  # question, choices and "tvqa:" are cut off
    assert ex["meta"]["sents"].endswith("a4: Joey.")  # the text itself is whole


def test_prompts_off_and_custom(root, tok):
    ds = TVQADataset(VideoLayout(root), "val", tok, prompt=video_task_prompts(False)["tvqa"])
    assert ds[0]["input_ids"] == encode(tok, TVQA_TEXT + " ", 600)


def test_tvqa_test_concatenates_public_and_release(root, tok):
    ds = TVQADataset(VideoLayout(root), SPLITS["test"]["tvqa"], tok)
    assert [d["question_id"] for d in ds.data] == [21, 21, 22]  # test_public ids predicted twice (§9 item 9)
    assert not ds.labelled
    batch = ds.collate([ds[0], ds[2]])
    assert "target_ids" not in batch and "answers" not in batch
    assert batch["question_ids"] == [21, 22] and batch["video_ids"] == [TV, TV_EMPTY]


def test_how2qa_four_choices(root, tok):
    ds = How2QADataset(VideoLayout(root), "train_release", tok)
    ex = ds[0]
    assert ex["meta"]["sents"] == HOW2QA_TEXT
    assert ex["input_ids"] == encode(tok, HOW2QA_TEXT + " how2qa: ", 600)
    assert ex["meta"]["answers"] == "a1" and ex["meta"]["types"] == "how2qa"
    raw = np.load(root / f"video/vis_features/how2/clip-vit/{HOW2}.npz")["features"]
    assert torch.equal(ex["vis_feats"], torch.from_numpy(reference_pool(raw, 64)))  # 3-D form for How2QA too


def test_tvc_one_example_per_description(root, tok):
    ds = TVCDataset(VideoLayout(root), "val_release", tok)
    assert len(ds) == 2
    first, second = ds[0], ds[1]
    assert first["meta"]["sents"] == second["meta"]["sents"] == TVC_TEXT
    assert first["input_ids"] == encode(tok, TVC_TEXT + " tvc: ", 600)
    assert first["target_ids"] == encode(tok, "a man walks in", 20)
    assert second["meta"]["answers"] == "Ross walks in"
    assert [first["meta"][k] for k in ("question_ids", "types", "clip_ids", "tss")] == [7001, "v", 901, [35.73, 40.9]]
    assert ds.ground_truth() == ["a man walks in", "Ross walks in"]
    batch = ds.collate([first, second])
    assert batch["task"] == "tvc" and batch["input_ids"].shape == (2, len(first["input_ids"]))
    assert batch["vis_feats"].shape == (2, 64, D) and batch["vis_feats"].dtype == torch.float32
    assert batch["boxes"].shape == (2, 64, 4) and not batch["boxes"].any()
    lengths = [len(first["target_ids"]), len(second["target_ids"])]
    assert batch["target_ids"].shape == (2, max(lengths)) and lengths[0] != lengths[1]
    short = int(np.argmin(lengths))
    assert (batch["target_ids"][short, min(lengths):] == -100).all()


def test_tvc_test_clips(root, tok):
    ds = TVCDataset(VideoLayout(root), "test_release", tok)
    ex = ds[0]
    assert ex["meta"]["sents"] == "[Subs]  [TS] ([3, 5])" and "target_ids" not in ex
    assert ex["meta"]["question_ids"] == 902 and ex["meta"]["types"] == "tvc"


def test_yc2c_has_no_ts(root, tok):
    ds = YC2CDataset(VideoLayout(root), "train_release", tok)
    ex = ds[0]
    assert ex["meta"]["sents"] == YC2C_TEXT
    assert ex["input_ids"] == encode(tok, YC2C_TEXT + " yc2c: ", 600)
    assert ex["target_ids"] == encode(tok, "stir the eggs", 20)
    assert "tss" not in ex["meta"] and ex["meta"]["types"] == "yc2c"
    raw = np.load(root / f"video/vis_features/yc2/clip-vit/{YC2}.npz")["features"]
    assert torch.equal(ex["vis_feats"][:3], torch.from_numpy(raw)) and not ex["vis_feats"][3:].any()
    test = YC2CDataset(VideoLayout(root), "test_release", tok)
    assert test[0]["meta"]["question_ids"] == 4 and test[0]["meta"]["sents"] == YC2C_TEXT


def test_loaders_and_multitask(root, tok):
    layout = VideoLayout(root)
    datasets = {"tvqa": TVQADataset(layout, "val", tok), "tvc": TVCDataset(layout, "val_release", tok)}
    loaders = build_video_loaders(datasets, batch_size=2, train=True)
    multi = MultitaskLoader(loaders)
    batches = list(multi)
    assert sorted(b["task"] for b in batches) == ["tvc", "tvqa", "tvqa"]
    assert all(b["vis_feats"].shape[1:] == (64, D) for b in batches)


# ---- errors: every problem is a DataError naming the path ----

def raises(path, func, *args, **kwargs):
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


def test_missing_subtitles(root, tok):
    path = root / "video/ann/tv_subtitles.jsonl"
    path.unlink()
    raises(path, TVQADataset, VideoLayout(root), "val", tok)


def test_missing_annotation(root, tok):
    raises(root / "video/ann/tvqa/tvqa_train.jsonl", build_video_datasets, VideoLayout(root), tok, "train")


def test_missing_feature_file_and_folder(root, tok):
    path = root / f"video/vis_features/tv/clip-vit/{TV}.npz"
    ds = TVQADataset(VideoLayout(root), "val", tok)
    path.unlink()
    assert TV in raises(path, ds.__getitem__, 0)
    folder = root / "video/vis_features/yc2/clip-vit"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    raises(folder, YC2CDataset, VideoLayout(root), "train_release", tok)


def test_bad_npz_and_bad_lines(root, tok):
    path = root / f"video/vis_features/tv/clip-vit/{TV}.npz"
    np.savez(path, feats=frames(3))
    raises(path, TVQADataset(VideoLayout(root), "val", tok).__getitem__, 0)
    ann = root / "video/ann/tvqa/tvqa_val.jsonl"
    ann.write_text(ann.read_text() + "{not json\n")
    raises(ann, TVQADataset, VideoLayout(root), "val", tok)
    entry = qa_entry(TV, 99, 1)
    del entry["q"]
    write_jsonl(ann, [entry])
    assert "'q'" in raises(ann, TVQADataset, VideoLayout(root), "val", tok)


def test_video_without_subtitles(root, tok):
    subs = root / "video/ann/tv_subtitles.jsonl"
    write_jsonl(subs, [{"vid_name": TV, "sub": []}])
    assert TV_EMPTY in raises(subs, TVQADataset, VideoLayout(root), "val", tok)


def test_missing_root(tmp_path):
    raises(tmp_path / "nowhere", VideoLayout, tmp_path / "nowhere")
