"""`vlpet evaluate` on small files in the official formats, and its error paths."""

import argparse
import json

import pytest

from vlpet.commands import evaluate


def write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def run_cli(capsys, *argv, coverage=False):
    """Run the command; return (exit code, parsed JSON line or None, stderr). The line's "coverage" is checked
    against its scored "n" and left out unless ``coverage``."""
    code = evaluate.main(list(argv))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == (1 if code == 0 else 0)
    result = json.loads(lines[0]) if lines else None
    if result is not None and not coverage:
        assert result.pop("coverage")["predicted"] == result["n"]
    return code, result, captured.err


def vqa_annotation(qid, answers, answer_type):
    return {
        "question_id": qid, "image_id": 1, "question_type": "what", "answer_type": answer_type,
        "multiple_choice_answer": answers[0],
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)],
    }  # fmt: skip


@pytest.fixture
def vqa_files(tmp_path):
    gt = {"annotations": [
        vqa_annotation(1, ["yes"] * 10, "yes/no"),  # "Yes": paper 1 (lower-cased), official 0 (GT unanimous)
        vqa_annotation(2, ["2"] * 10, "number"),  # "two": paper 1, official 0
        vqa_annotation(3, ["red"] * 2 + ["blue"] * 8, "other"),  # "red": k=2 -> 0.6 for both
        vqa_annotation(4, ["cat"] * 10, "other"),  # not predicted, not scored
    ]}  # fmt: skip
    pred = [{"question_id": 1, "answer": "Yes"}, {"question_id": 2, "answer": "two"},
            {"question_id": "3", "answer": "red"}]  # a string id matches the int id
    return write(tmp_path / "pred.json", pred), write(tmp_path / "v2_mscoco_val2014_annotations.json", gt)


def test_vqa_paper_and_official(capsys, vqa_files):
    pred, gt = vqa_files
    code, paper, _ = run_cli(capsys, "vqa", "--pred", pred, "--gt", gt)  # paper is the default
    assert code == 0
    # (1 + 1 + 0.6) / 3 = 86.666...
    assert paper == {"task": "vqa", "scorer": "paper", "score": 86.67, "n": 3,
                     "per_answer_type": {"yes/no": 100.0, "number": 100.0, "other": 60.0}}  # fmt: skip
    code, official, _ = run_cli(capsys, "vqa", "--pred", pred, "--gt", gt, "--scorer", "official")
    assert (code, official["score"], official["scorer"]) == (0, 20.0, "official")  # (0 + 0 + 0.6) / 3


def test_gqa(capsys, tmp_path):
    gt = [{"question_id": "201", "img_id": "n1", "sent": "?", "label": {"red": 1.0}},
          {"question_id": "202", "img_id": "n2", "sent": "?", "label": {"no": 1.0}}]  # fmt: skip
    pred = [{"question_id": 201, "answer": "red"}, {"question_id": "202", "answer": "yes"}]
    code, result, _ = run_cli(capsys, "gqa", "--pred", write(tmp_path / "p.json", pred), "--gt",
                              write(tmp_path / "testdev.json", gt))
    assert (code, result) == (0, {"task": "gqa", "score": 50.0, "n": 2})


NLVR_GT = [
    {"identifier": "test1-0-0-0", "uid": "nlvr2_test_0", "label": 1, "sent": "s", "img0": "a", "img1": "b"},
    {"identifier": "test1-0-1-0", "uid": "nlvr2_test_1", "label": 0, "sent": "s", "img0": "c", "img1": "d"},
    {"identifier": "test1-1-0-1", "uid": "nlvr2_test_2", "label": 1, "sent": "t", "img0": "e", "img1": "f"},
]


@pytest.mark.parametrize("key", ["identifier", "uid"])
def test_nlvr_by_identifier_or_uid(capsys, tmp_path, key):
    labels = [1, 1, 1]  # the 2nd is wrong: accuracy 2/3; group test1-0--0 fails, test1-1--1 holds -> 1/2
    pred = [{key: item[key], "label": label} for item, label in zip(NLVR_GT, labels)]
    code, result, _ = run_cli(capsys, "nlvr", "--pred", write(tmp_path / "p.json", pred), "--gt",
                              write(tmp_path / "test.json", NLVR_GT))
    assert code == 0
    assert result == {"task": "nlvr", "score": pytest.approx(200 / 3), "consistency": 50.0, "n": 3}


def test_caption_with_coco_ids(capsys, tmp_path):
    pytest.importorskip("pycocoevalcap")
    images = [
        {"filename": "COCO_val2014_000000000001.jpg", "cocoid": 1, "split": "test",
         "sentences": [{"raw": "A dog runs on the grass."}, {"raw": "A brown dog running outside."}]},
        {"filename": "COCO_val2014_000000000002.jpg", "cocoid": 2, "split": "test",
         "sentences": [{"raw": "A plate of food on a table."}, {"raw": "Food served on a white plate."}]},
        {"filename": "COCO_train2014_000000000003.jpg", "cocoid": 3, "split": "restval",
         "sentences": [{"raw": "A red bus."}]},
    ]  # fmt: skip
    pred = [{"image_id": 1, "caption": "a dog running on the grass"},
            {"image_id": "COCO_val2014_000000000002", "caption": "a plate of food on a table"}]  # fmt: skip
    code, result, _ = run_cli(capsys, "caption", "--pred", write(tmp_path / "p.json", pred), "--gt",
                              write(tmp_path / "dataset_coco.json", {"images": images}), "--split", "test")
    assert code == 0
    assert (result["task"], result["split"], result["n"]) == ("caption", "test", 2)
    assert result["score"] == result["CIDEr"] > 10  # x100 scale: a fraction would be below 10 here
    assert set(result) >= {"Bleu_1", "Bleu_4", "ROUGE_L"}


def test_add_arguments_embeds_as_a_subcommand(capsys, vqa_files):
    pred, gt = vqa_files
    parser = argparse.ArgumentParser(prog="vlpet")
    evaluate.add_arguments(parser.add_subparsers(dest="command").add_parser("evaluate"))
    args = parser.parse_args(["evaluate", "vqa", "--pred", pred, "--gt", gt, "--scorer", "official"])
    assert evaluate.run(args) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 20.0


# ---------------------------------------------------------------------------------------------------------- errors


def assert_fails(capsys, argv, *fragments):
    code, result, err = run_cli(capsys, *argv)
    assert code != 0 and result is None
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_missing_files_are_named(capsys, tmp_path, vqa_files):
    pred, gt = vqa_files
    missing = str(tmp_path / "nope.json")
    assert_fails(capsys, ["vqa", "--pred", missing, "--gt", gt], "predictions file not found", missing)
    assert_fails(capsys, ["vqa", "--pred", pred, "--gt", missing], "ground-truth file not found", missing)


def test_malformed_files_are_named(capsys, tmp_path, vqa_files):
    pred, gt = vqa_files
    bad_json = write(tmp_path / "bad.json", "[{")
    assert_fails(capsys, ["vqa", "--pred", bad_json, "--gt", gt], bad_json, "not readable JSON")
    as_dict = write(tmp_path / "dict.json", {"question_id": 1, "answer": "yes"})
    assert_fails(capsys, ["vqa", "--pred", as_dict, "--gt", gt], as_dict, "expected a JSON list", "got a JSON dict")
    no_answer = write(tmp_path / "no_answer.json", [{"question_id": 1, "prediction": "yes"}])
    assert_fails(capsys, ["vqa", "--pred", no_answer, "--gt", gt], no_answer, "item 0")
    twice = write(tmp_path / "twice.json", [{"question_id": 1, "answer": "a"}, {"question_id": "1", "answer": "b"}])
    assert_fails(capsys, ["vqa", "--pred", twice, "--gt", gt], twice, "question_id 1 appears more than once")
    assert_fails(capsys, ["vqa", "--pred", pred, "--gt", pred], pred, "VQA v2 annotation file")
    assert_fails(capsys, ["gqa", "--pred", pred, "--gt", gt], gt, "expected a JSON list")


def test_unknown_ids_name_both_files(capsys, tmp_path, vqa_files):
    _, gt = vqa_files
    pred = write(tmp_path / "p.json", [{"question_id": 1, "answer": "yes"}, {"question_id": 77, "answer": "no"}])
    assert_fails(capsys, ["vqa", "--pred", pred, "--gt", gt], pred, gt, "not in the ground truth: 77")


def test_nlvr_errors(capsys, tmp_path):
    gt = write(tmp_path / "test.json", NLVR_GT)
    partial = write(tmp_path / "partial.json", [{"identifier": "test1-0-0-0", "label": 1}])
    bad_label = write(tmp_path / "label.json", [{"identifier": "test1-0-0-0", "label": "True"}])
    assert_fails(capsys, ["nlvr", "--pred", bad_label, "--gt", gt], bad_label, "not 0/1")
    no_key = write(tmp_path / "key.json", [{"label": 1}])
    assert_fails(capsys, ["nlvr", "--pred", no_key, "--gt", gt], no_key, 'neither "identifier" nor "uid"')
    unknown_uid = write(tmp_path / "uid.json", [{"uid": "nlvr2_dev_9", "label": 1}])
    assert_fails(capsys, ["nlvr", "--pred", unknown_uid, "--gt", gt], unknown_uid, "uid nlvr2_dev_9")
    text_labels = write(tmp_path / "text_labels.json", [{**NLVR_GT[0], "label": "True"}])
    assert_fails(capsys, ["nlvr", "--pred", partial, "--gt", text_labels], text_labels, '"label" must be of type int')


def test_caption_errors(capsys, tmp_path):
    images = [{"filename": "COCO_val2014_000000000001.jpg", "split": "val", "sentences": [{"raw": "A dog."}]}]
    gt = write(tmp_path / "dataset_coco.json", {"images": images})
    pred = write(tmp_path / "p.json", [{"image_id": "COCO_val2014_000000000001", "caption": "a dog"}])
    assert_fails(capsys, ["caption", "--pred", pred, "--gt", gt, "--split", "test"], gt, "no image has split 'test'")
    assert_fails(capsys, ["caption", "--pred", pred, "--gt", pred], pred, "dataset_coco.json")
    no_split = write(tmp_path / "no_split.json", {"images": [{"filename": "x.jpg", "sentences": []}]})
    assert_fails(capsys, ["caption", "--pred", pred, "--gt", no_split], no_split, "lacks 'split'")


def test_a_partial_predictions_file_is_scored_alike_for_every_task(capsys, tmp_path, vqa_files):
    """Every task scores the predicted items only, adds their coverage to the JSON line and warns on stderr
    naming both files (NLVR2 used to refuse what GQA scored silently)."""
    _, vqa_gt = vqa_files
    gqa_gt = write(tmp_path / "testdev.json", [{"question_id": str(i), "label": {"red": 1.0}} for i in range(8)])
    nlvr_gt = write(tmp_path / "test.json", NLVR_GT)
    images = [{"filename": f"COCO_val2014_00000000000{i}.jpg", "split": "test", "sentences": [{"raw": "A dog."}]}
              for i in range(1, 4)]
    coco_gt = write(tmp_path / "dataset_coco.json", {"images": images})
    cases = {"vqa": ([{"question_id": 1, "answer": "yes"}], vqa_gt, 4),
             "gqa": ([{"question_id": "3", "answer": "red"}], gqa_gt, 8),
             "nlvr": ([{"identifier": NLVR_GT[0]["identifier"], "label": NLVR_GT[0]["label"]}], nlvr_gt, len(NLVR_GT)),
             "caption": ([{"image_id": "COCO_val2014_000000000001", "caption": "a dog"}], coco_gt, 3)}
    for task, (pred, gt, labelled) in cases.items():
        if task == "caption":
            pytest.importorskip("pycocoevalcap")
        path = write(tmp_path / f"partial_{task}.json", pred)
        code, result, err = run_cli(capsys, task, "--pred", path, "--gt", gt, coverage=True)
        assert code == 0 and result["n"] == 1, task
        assert result["coverage"] == {"predicted": 1, "labelled": labelled}, task
        assert err.count("\n") == 1 and "warning" in err and path in err and gt in err, task
        assert f"predicts 1 of the {labelled} labelled items" in err, task
