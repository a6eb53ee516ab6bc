"""Converters of the public TVQA / TVC annotations and TV subtitles into the VALUE layout, read back by the video
loaders (hand-made files in the original formats)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.video import TVCDataset, TVQADataset, VideoLayout
from vlpet.features.value_convert import main

VIDS = ("friends_s01e02_seg02_clip_07", "castle_s01e01_seg01_clip_00")


def qa(vid, k, labelled=True):
    record = {"a0": "He is reading. ", "a1": "A cup", "a2": "Nothing", "a3": "Ross", "a4": "In the park.",
              "q": "What is Joey holding?", "qid": 100 + k, "show_name": "Friends", "ts": "20.16-25.12",
              "vid_name": vid}
    return {**record, "answer_idx": k % 5} if labelled else record


def clip(vid, k, labelled=True):
    record = {"vid_name": vid, "duration": 61.4, "ts": [35.73, 40.9], "clip_id": 7000 + k}
    if labelled:
        record["descs"] = [{"desc": "Joey holds a cup.", "type": "v", "from_retrieval": False, "desc_id": 900 + k}]
    return record


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture()
def raw(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "TVRetrieval" / "data" / "tvqa_preprocessed_subtitles.jsonl",
                [{"vid_name": v, "sub": [{"text": " Hi! ", "start": 0.5, "end": 1.2}, {"text": "How you doin'?",
                                                                                     "start": 1.3, "end": 2.0}]}
                 for v in VIDS])
    for split, labelled in (("train", True), ("val", True), ("test_public", False)):
        write_jsonl(raw / "tvqa_qa_release" / f"tvqa_{split}.jsonl", [qa(v, k, labelled) for k, v in enumerate(VIDS)])
    for split in ("train", "val"):
        write_jsonl(raw / "TVCaption" / "data" / f"tvc_{split}_release.jsonl", [clip(v, k) for k, v in enumerate(VIDS)])
    write_jsonl(raw / "TVCaption" / "data" / "tvc_test_public_release.jsonl", [clip(VIDS[0], 5)])
    return raw


def test_converted_tree_is_read_by_the_video_loaders(tmp_path, raw, capsys):
    root = tmp_path / "datasets"
    assert main(["--raw", str(raw), "--out", str(root), "--tvc-test-from-public"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"]["ann/tvqa/tvqa_train.jsonl"] == 2 and summary["written"]["ann/tvc/tvc_test_release.jsonl"] == 1
    assert "ann/tvqa/tvqa_test_release.jsonl" in summary["not_rebuilt"]
    features = root / "video" / "vis_features" / "tv" / "clip-vit"
    features.mkdir(parents=True)
    for vid in VIDS:
        np.savez(features / f"{vid}.npz", features=np.ones((40, 512), np.float16))
    layout, tokenizer = VideoLayout(root), build_tokenizer("bart", ["joey holds a cup hi how you doin"])
    tvqa = TVQADataset(layout, "train", tokenizer)
    assert len(tvqa) == 2 and tvqa.data[1]["answer"] == "a1" and tvqa.text(tvqa.data[0]).startswith("[Subs] Hi!")
    assert not TVQADataset(layout, "test_public", tokenizer).labelled
    assert TVCDataset(layout, "val_release", tokenizer).data[0]["answer"] == "Joey holds a cup."
    test = TVCDataset(layout, "test_release", tokenizer)
    assert not test.labelled and test.data[0]["question_id"] == 7005
    assert tvqa[0]["vis_feats"].shape == (64, 512)


def test_missing_original_file_is_one_line_and_nothing_written(tmp_path, raw, capsys):
    (raw / "TVCaption" / "data" / "tvc_val_release.jsonl").unlink()
    assert main(["--raw", str(raw), "--out", str(tmp_path / "datasets")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tvc_val_release.jsonl" in err and "TVCaption" in err
    assert not (tmp_path / "datasets").exists()
    assert main(["--raw", str(raw), "--out", str(tmp_path / "datasets"), "--tasks", "tvqa"]) == 0


def test_malformed_record_is_one_line(tmp_path, raw, capsys):
    path = raw / "tvqa_qa_release" / "tvqa_val.jsonl"
    records = [qa(v, k) for k, v in enumerate(VIDS)]
    del records[1]["show_name"]
    write_jsonl(path, records)
    assert main(["--raw", str(raw), "--out", str(tmp_path / "datasets")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "record 2 lacks the field(s) show_name" in err
    assert not (tmp_path / "datasets").exists()
