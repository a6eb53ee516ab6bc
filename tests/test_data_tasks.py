"""Each task's dataset and its batches on hand-made examples written in the real layout (pipeline spec §2).

Expected ids are literals, read off the test tokenizer below:

    word   vqa :  gpa gqa nlvr caption what color is the circle ?  red blue true false a  dog .
    BART   4   5  6   7   8    9       10   11    12 13  14     15 16  17   18   19    20 21  22
    T5     3   4  5   6   7    8       9    10    11 12  13     14 15  16   17   18    19 20  21

BART specials: <s>=0 <pad>=1 </s>=2; T5 specials: <pad>=0 </s>=1.
"""

import json

import h5py
import numpy as np
import pytest
import torch

from vlpet.data.caption import CaptionDataset
from vlpet.data.device import to_device
from vlpet.data.gqa import GQADataset
from vlpet.data.layout import DataLayout
from vlpet.data.nlvr import NLVRDataset
from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.vqa import VQADataset

WORDS = ["vqa", ":", "gpa", "gqa", "nlvr", "caption", "what", "color", "is", "the", "circle", "?", "red", "blue",
         "true", "false", "a", "dog", "."]
F = 8
LONG_QUESTION = " ".join(["what color is the circle"] * 5) + "?"  # 26 words
LONG_ANSWER = " ".join(["a dog"] * 6)  # 12 words
COCO = "COCO/clip_features/data_clip_RN101_att"


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_h5(root, folder, img_id, value):
    (root / folder).mkdir(parents=True, exist_ok=True)
    with h5py.File(root / folder / f"{img_id}.h5", "w") as f:
        f.create_dataset(f"{img_id}/features", data=np.full((49, F), value, dtype=np.float16))


@pytest.fixture
def root(tmp_path):
    write_h5(tmp_path, COCO, "COCO_train2014_000000000001", 0.125)
    for k in (2, 3, 4):
        write_h5(tmp_path, COCO, f"COCO_val2014_00000000000{k}", 0.25 * k)
    write_json(tmp_path / "vqa/karpathy_train.json", [
        {"img_id": "COCO_train2014_000000000001", "sent": "what color is the circle?", "question_id": 1001,
         "label": {"red": 1.0}, "answer_type": "other", "question_type": "what color is the"},
        {"img_id": "COCO_val2014_000000000002", "sent": "is the dog blue?", "question_id": 2001, "label": {}},
        {"img_id": "COCO_val2014_000000000002", "sent": LONG_QUESTION, "question_id": 2002,
         "label": {LONG_ANSWER: 0.6}},
    ])
    write_json(tmp_path / "vqa/test_4.json", [
        {"img_id": "COCO_val2014_000000000003", "sent": "what color is the dog?", "question_id": 3001}])
    write_h5(tmp_path, "VG/clip_features/data_clip_RN101_att", "1", 1.0)
    write_h5(tmp_path, "GQA/clip_features/data_clip_RN101_att", "1", 2.0)
    write_json(tmp_path / "GQA/train.json", [
        {"img_id": "1", "sent": "what color is the dog?", "question_id": "g1", "label": {"blue": 1.0}}])
    write_json(tmp_path / "GQA/valid.json", [
        {"img_id": "1", "sent": LONG_QUESTION, "question_id": "g2", "label": {"red": 1.0}}])
    write_json(tmp_path / "GQA/testdev.json", [
        {"img_id": "1", "sent": "what color is the dog?", "question_id": "g3", "label": {LONG_ANSWER: 1.0}}])
    write_h5(tmp_path, "nlvr/clip_features/data_clip_RN101_att", "train-1-0-img0", 3.0)
    write_h5(tmp_path, "nlvr/clip_features/data_clip_RN101_att", "train-1-0-img1", 4.0)
    pair = {"img0": "train-1-0-img0", "img1": "train-1-0-img1"}
    write_json(tmp_path / "nlvr/train.json", [
        {**pair, "identifier": "train-1-0-0", "sent": "the dog is red.", "label": 1, "uid": "nlvr2_train_0"},
        {**pair, "identifier": "train-1-0-1", "sent": LONG_QUESTION[:-1], "label": 0, "uid": "nlvr2_train_1"}])
    write_json(tmp_path / "COCO/dataset_coco.json", {"images": [
        {"filename": "COCO_train2014_000000000001.jpg", "split": "train",
         "sentences": [{"raw": "a red circle. "}, {"raw": " a dog"}]},
        {"filename": "COCO_val2014_000000000002.jpg", "split": "restval",
         "sentences": [{"raw": " ".join(["a dog"] * 25)}]},
        {"filename": "COCO_val2014_000000000003.jpg", "split": "val", "sentences": [{"raw": "a dog."},
                                                                                   {"raw": "a blue dog "}]},
        {"filename": "COCO_val2014_000000000004.jpg", "split": "test", "sentences": [{"raw": "a circle"}]},
    ]})
    return DataLayout(tmp_path)


@pytest.fixture(params=["bart", "t5"])
def tok(request):
    return build_tokenizer(request.param, WORDS)


def expect(tok, bart, t5):
    return bart if tok.bos_token == "<s>" else t5


def rows(tensor):
    return tensor.tolist()


def test_vqa_inputs_targets_scores(root, tok):
    ds = VQADataset(root, "karpathy_train", tok)
    batch = ds.batch([0, 1, 2])
    pad = tok.pad_token_id
    assert rows(batch["input_ids"]) == expect(tok, [
        [0, 4, 5, 10, 11, 12, 13, 14, 15, 2] + [1] * 10,
        [0, 4, 5, 12, 13, 21, 17, 15, 2] + [1] * 11,
        [0, 4, 5, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 2],  # 20 tokens, </s> kept
    ], [
        [3, 4, 9, 10, 11, 12, 13, 14, 1] + [0] * 11,
        [3, 4, 11, 12, 20, 16, 14, 1] + [0] * 12,
        [3, 4, 9, 10, 11, 12, 13, 9, 10, 11, 12, 13, 9, 10, 11, 12, 13, 9, 10, 1],
    ])
    assert batch["input_ids"].dtype == torch.long and pad in batch["input_ids"][0].tolist()
    assert rows(batch["target_ids"]) == expect(tok, [
        [0, 16, 2] + [-100] * 7,
        [0, 2] + [-100] * 8,  # empty label: answer '' with weight 0
        [0, 20, 21, 20, 21, 20, 21, 20, 21, 2],  # answer truncated to 10 tokens
    ], [
        [15, 1] + [-100] * 8,
        [1] + [-100] * 9,
        [19, 20, 19, 20, 19, 20, 19, 20, 19, 1],
    ])
    assert batch["scores"].dtype == torch.float32
    assert batch["scores"].tolist() == pytest.approx([1.0, 0.0, 0.6])
    assert batch["task"] == "vqa"
    assert batch["question_ids"] == [1001, 2001, 2002]
    assert batch["answers"] == ["red", "", LONG_ANSWER]
    assert batch["all_answers"] == [["red"], [], [LONG_ANSWER]]
    assert batch["labels"][0] == {"red": 1.0}
    assert batch["img_ids"][1] == "COCO_val2014_000000000002"


def test_vqa_features_and_boxes(root, tok):
    ds = VQADataset(root, "karpathy_train", tok)
    batch = ds.batch([0, 1])
    assert batch["vis_feats"].shape == (2, 49, F) and batch["vis_feats"].dtype == torch.float16  # as stored
    assert to_device(batch, "cpu")["vis_feats"].dtype == torch.float32  # widened on the model's device
    assert torch.all(batch["vis_feats"][0] == 0.125) and torch.all(batch["vis_feats"][1] == 0.5)
    assert batch["boxes"].shape == (2, 49, 4) and batch["boxes"].dtype == torch.float32
    assert not batch["boxes"].any()


def test_vqa_answer_sampled_by_soft_score(root, tok):
    ds = VQADataset(root, "karpathy_train", tok)
    ds.data = [dict(ds.data[0], label={"red": 0.9, "blue": 0.3})]
    np.random.seed(0)
    draws = ds.batch([0] * 2000)
    red = [answer == "red" for answer in draws["answers"]]
    assert sum(red) / len(red) == pytest.approx(0.75, abs=0.03)  # 0.9 / (0.9 + 0.3)
    for red_drawn, score, target in zip(red, draws["scores"].tolist(), rows(draws["target_ids"])):
        assert score == pytest.approx(0.9 if red_drawn else 0.3)
        assert target == expect(tok, [0, 16 if red_drawn else 17, 2], [15 if red_drawn else 16, 1])


def test_vqa_unlabelled_split_has_no_targets(root, tok):
    ds = VQADataset(root, "test_4", tok)
    batch = ds.batch([0])
    assert "target_ids" not in batch and "scores" not in batch
    assert batch["question_ids"] == [3001] and batch["is_topk_optimal"] == [None]


def test_gqa_prompt_typo_truncation_and_untruncated_target(root, tok):
    ds = GQADataset(root, "train,valid", tok)
    batch = ds.batch([0, 1])
    assert rows(batch["input_ids"]) == expect(tok, [
        [0, 6, 5, 10, 11, 12, 13, 21, 15, 2] + [1] * 10,
        [0, 6, 5, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 2],
    ], [
        [5, 4, 9, 10, 11, 12, 20, 14, 1] + [0] * 11,
        [5, 4, 9, 10, 11, 12, 13, 9, 10, 11, 12, 13, 9, 10, 11, 12, 13, 9, 10, 1],
    ])
    assert rows(batch["target_ids"]) == expect(tok, [[0, 17, 2], [0, 16, 2]], [[16, 1], [15, 1]])
    assert "scores" not in batch  # GQA's loss is not weighted
    assert torch.all(batch["vis_feats"] == 1.0)  # train/valid images come from VG/
    assert batch["question_ids"] == ["g1", "g2"] and batch["task"] == "gqa"


def test_gqa_fixed_prompt_testdev_images_and_long_target(root, tok):
    ds = GQADataset(root, "testdev", tok, fix_prompt_typo=True)
    batch = ds.batch([0])
    assert rows(batch["input_ids"]) == expect(tok, [[0, 7, 5, 10, 11, 12, 13, 21, 15, 2]],
                                              [[6, 4, 9, 10, 11, 12, 20, 14, 1]])
    assert rows(batch["target_ids"]) == expect(tok, [[0] + [20, 21] * 6 + [2]], [[19, 20] * 6 + [1]])
    assert torch.all(batch["vis_feats"] == 2.0)  # testdev images come from GQA/


def test_nlvr_two_images_untruncated_input_true_false(root, tok):
    ds = NLVRDataset(root, "train", tok)
    batch = ds.batch([0, 1])
    long_bart = [0, 8, 5] + [10, 11, 12, 13, 14] * 5 + [2]  # 29 tokens: NLVR2 input is never truncated
    long_t5 = [7, 4] + [9, 10, 11, 12, 13] * 5 + [1]
    assert rows(batch["input_ids"]) == expect(tok, [[0, 8, 5, 13, 21, 12, 16, 22, 2] + [1] * 20, long_bart],
                                              [[7, 4, 12, 20, 11, 15, 21, 1] + [0] * 20, long_t5])
    assert rows(batch["target_ids"]) == expect(tok, [[0, 18, 2], [0, 19, 2]], [[17, 1], [18, 1]])
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    assert batch["vis_feats"].shape == (2, 2, 49, F) and batch["vis_feats"].dtype == torch.float16
    assert torch.all(batch["vis_feats"][:, 0] == 3.0) and torch.all(batch["vis_feats"][:, 1] == 4.0)
    assert batch["boxes"].shape == (2, 2, 49, 4) and not batch["boxes"].any()
    assert batch["uids"] == batch["question_ids"] == ["nlvr2_train_0", "nlvr2_train_1"]
    assert batch["identifiers"] == ["train-1-0-0", "train-1-0-1"]
    assert batch["answers"] == ["true", "false"]
    assert batch["img_ids"][0] == ["train-1-0-img0", "train-1-0-img1"]


def test_caption_train_one_example_per_reference(root, tok):
    ds = CaptionDataset(root, "karpathy_train", tok)
    assert len(ds) == 3  # 2 references of the train image + 1 of the restval image
    batch = ds.batch([0, 1, 2])
    assert rows(batch["input_ids"]) == expect(tok, [[0, 9, 5, 2]] * 3, [[8, 4, 1]] * 3)
    assert rows(batch["target_ids"]) == expect(tok, [
        [0, 20, 16, 14, 22, 2] + [-100] * 34,
        [0, 20, 21, 2] + [-100] * 36,
        [0] + [20, 21] * 19 + [2],  # 50 words truncated to 40 tokens
    ], [
        [19, 15, 13, 21, 1] + [-100] * 35,
        [19, 20, 1] + [-100] * 37,
        [19, 20] * 19 + [19, 1],
    ])
    assert batch["sents"] == ["a red circle.", "a dog", " ".join(["a dog"] * 25)]
    assert batch["targets"][0] == ["a red circle.", "a dog"]
    assert batch["img_ids"] == ["COCO_train2014_000000000001"] * 2 + ["COCO_val2014_000000000002"]
    assert torch.all(batch["vis_feats"][2] == 0.5)


def test_caption_val_test_one_example_per_image_with_all_references(root, tok):
    val = CaptionDataset(root, "karpathy_val", tok)
    batch = val.batch([0])
    assert len(val) == 1 and "target_ids" not in batch
    assert batch["targets"] == [["a dog.", "a blue dog"]]
    assert batch["img_ids"] == ["COCO_val2014_000000000003"]
    test = CaptionDataset(root, "karpathy_test", tok)
    assert len(test) == 1 and test.batch([0])["targets"] == [["a circle"]]


def test_limit_keeps_the_first_examples(root, tok):
    assert [d["question_id"] for d in VQADataset(root, "karpathy_train", tok, limit=2).data] == [1001, 2001]
