"""Video metrics on hand cases (pipeline spec §5.6, §9 items 23-24): QA accuracy %, single-reference CIDEr x100,
the selection score, and the VALUE submission files."""

import json

import pytest

from vlpet.metrics import EvaluationError
from vlpet.metrics.video import (caption_predictions, parse_choice, score_video, score_video_caption,
                                 score_video_qa, selection_score, write_value_submission)


def test_qa_accuracy_counts_exact_matches_over_all_questions():
    answers = {1: "a0", 2: "a3", 3: "a1", 4: "a4"}
    types = {1: "Friends", 2: "Friends", 3: "Castle", 4: "Castle"}
    # "a3 " and "A1" are not exact matches; question 4 has no prediction and counts as wrong
    result = score_video_qa({1: "a0", 2: "a3 ", 3: "a1"}, answers, types)
    assert result["score"] == result["accuracy"] == 50.0 and (result["correct"], result["n"]) == (2, 4)
    assert result["per_type"] == {"Castle": 50.0, "Friends": 50.0}
    assert score_video_qa({1: "A0"}, answers)["score"] == 0.0
    assert score_video("tvqa", {1: "a0", 2: "a3", 3: "a1", 4: "a4"}, (answers, types))["score"] == 100.0
    with pytest.raises(EvaluationError):
        score_video_qa({9: "a0"}, answers)


def test_caption_cider_single_reference_per_pair():
    # the same clip decoded twice, once per description: each pair is scored against its own description only.
    # CIDEr-D of an exact match is 10 when its n-grams are not in every reference (IDF > 0); no overlap gives 0.
    preds = ["someone opens the door", "someone opens the door", "a dog barks loudly"]
    refs = ["someone opens the door", "two cats sleep quietly", "a dog barks loudly"]
    result = score_video_caption(preds, refs)
    assert result["score"] == result["CIDEr"] == pytest.approx(100 * (10 + 0 + 10) / 3, abs=1e-6)
    assert result["n"] == 3
    assert score_video("tvc", preds[:1] + preds[2:], refs[:1] + refs[2:])["score"] == pytest.approx(1000.0)
    with pytest.raises(EvaluationError):
        score_video_caption(preds, refs[:2])


def test_selection_score():
    scores = {"tvqa": 70.0, "how2qa": 60.0, "tvc": 40.0, "yc2c": 110.0}
    assert selection_score(scores) == 70.0
    assert selection_score(scores, "tvqa,how2qa,tvc,yc2c") == 70.0
    assert selection_score(scores, ["tvqa", "how2qa", "tvc", "yc2c"]) == 70.0
    assert selection_score(scores, "tvqa,tvc,how2qa,yc2c") is None  # the official substring test
    assert selection_score({"tvqa": 1.0}, "tvqa") is None
    with pytest.raises(EvaluationError):
        selection_score({"tvqa": 1.0})


def test_parse_choice_as_the_official_dump():
    assert [parse_choice(p) for p in ("a3", "a0", "b2", "a12", "a", "", "ax", " a1")] == [3, 0, 2, 1, 0, 0, 0, 0]


def test_qa_submission(tmp_path):
    path = write_value_submission("tvqa", {21: "a3", 22: "garbage", 23: "a4"}, tmp_path)
    assert path == tmp_path / "tvqa_test_predictions.json"
    assert json.loads(path.read_text()) == {"21": 3, "22": 0, "23": 4}
    path = write_value_submission("how2qa", [{"question_id": 5, "answer": "a1"}], tmp_path / "h.json")
    assert json.loads(path.read_text()) == {"5": 1}


def test_caption_submissions(tmp_path):
    batch = {"video_ids": ["v1", "v2"], "question_ids": [901, 902], "tss": [[3, 5], [1.5, 2.0]]}
    records = caption_predictions(batch, ["a man walks in", "she sits"])
    path = write_value_submission("tvc", records, tmp_path)
    assert path.name == "tvc_test_predictions.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"vid_name": "v1", "clip_id": 901, "ts": [3, 5], "descs": [{"desc": "a man walks in"}]},
                     {"vid_name": "v2", "clip_id": 902, "ts": [1.5, 2.0], "descs": [{"desc": "she sits"}]}]
    yc2 = caption_predictions({"video_ids": ["y"], "question_ids": [4]}, ["stir"])
    path = write_value_submission("yc2c", yc2, tmp_path)
    assert path.read_text() == '{"vid_name": "y", "clip_id": 4, "descs": [{"desc": "stir"}]}\n'
    with pytest.raises(EvaluationError):
        write_value_submission("tvc", yc2, tmp_path / "x.jsonl")
