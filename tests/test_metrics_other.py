"""GQA and NLVR2 on hand cases; COCO caption metrics against pycocoevalcap itself; one scale for val and test."""

import json

import pytest

from vlpet.commands import evaluate
from vlpet.metrics import EvaluationError
from vlpet.metrics.caption import score_caption
from vlpet.metrics.gqa import score_gqa
from vlpet.metrics.nlvr import score_nlvr, sentence_group

# ---------------------------------------------------------------------------------------------------------- GQA

GQA_LABELS = {"q1": {"red": 1.0}, "q2": {"red": 1.0}, "q3": {}, "q4": {"no": 1.0}, "q5": {"left": 1.0}}


def test_gqa_exact_match_without_normalisation():
    predictions = {"q1": "red", "q2": "Red", "q3": "yes", "q4": "no"}
    # q1 right; q2 "Red" != "red" (no lower-casing); q3 has an empty label; q4 right -> 2/4; q5 not predicted
    assert score_gqa(predictions, GQA_LABELS) == {"score": 50.0, "n": 4}


def test_gqa_errors():
    with pytest.raises(EvaluationError, match="not in the ground truth: q9"):
        score_gqa({"q9": "red"}, GQA_LABELS)
    with pytest.raises(EvaluationError, match="no predictions"):
        score_gqa({}, GQA_LABELS)


# ---------------------------------------------------------------------------------------------------------- NLVR2

NLVR_LABELS = {
    "test1-0-0-0": 1, "test1-0-1-0": 0,  # sentence group test1-0--0
    "test1-1-0-1": 1, "test1-1-1-1": 1,  # group test1-1--1
    "test1-2-0-0": 0,  # group test1-2--0
    "test1-2-0-1": 0,  # group test1-2--1 (another sentence of the same set)
}  # fmt: skip
NLVR_PREDICTIONS = {
    "test1-0-0-0": 1, "test1-0-1-0": 0,  # both right: group consistent
    "test1-1-0-1": 1, "test1-1-1-1": 0,  # one wrong: group inconsistent
    "test1-2-0-0": False,  # right (a bool is an int): consistent
    "test1-2-0-1": True,  # wrong: inconsistent
}  # fmt: skip


def test_nlvr_accuracy_and_consistency():
    # accuracy 4/6; consistency 2 of 4 groups (test1-0--0 and test1-2--0)
    result = score_nlvr(NLVR_PREDICTIONS, NLVR_LABELS)
    assert result == {"score": pytest.approx(400 / 6), "consistency": 50.0, "n": 6}


def test_nlvr_sentence_group():
    assert sentence_group("test1-0-1-0") == "test1-0--0"
    with pytest.raises(EvaluationError, match="split-set-pair-sentence"):
        sentence_group("test1-0")


def test_nlvr_needs_every_prediction_and_no_unknown_ones():
    partial = dict(NLVR_PREDICTIONS)
    del partial["test1-1-1-1"]
    with pytest.raises(EvaluationError, match="1 labelled example.* no prediction: test1-1-1-1"):
        score_nlvr(partial, NLVR_LABELS)
    with pytest.raises(EvaluationError, match="not in the ground truth: dev-9-9-9"):
        score_nlvr({**NLVR_PREDICTIONS, "dev-9-9-9": 1}, NLVR_LABELS)


# ---------------------------------------------------------------------------------------------------------- COCO

CAPTION_PREDICTIONS = {
    "img1": "a man riding a horse on the beach",
    "img2": "Two dogs playing with a ball.",
    "img3": "a cat sitting on a couch",
}
CAPTION_REFERENCES = {
    "img1": ["A man rides a horse along the beach.", "A person riding a horse on the sand.", "Man on horseback."],
    "img2": ["Two dogs play with a ball in the grass.", "A pair of dogs playing with a red ball."],
    "img3": ["A dog lying on the floor.", "A brown dog sleeping on a rug."],
    "img4": ["Not predicted, so not scored."],
}


@pytest.fixture(scope="module")
def pycocoevalcap_reference():
    """CIDEr, BLEU and ROUGE-L from pycocoevalcap, run the way COCOEvalCap.evaluate() runs them (fractions)."""
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in CAPTION_REFERENCES[k]] for k in CAPTION_PREDICTIONS})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in CAPTION_PREDICTIONS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {"CIDEr": Cider().compute_score(gts, res)[0], "Bleu": bleu, "ROUGE_L": Rouge().compute_score(gts, res)[0]}


@pytest.fixture(scope="module")
def caption_result():
    pytest.importorskip("pycocoevalcap")
    return score_caption(CAPTION_PREDICTIONS, CAPTION_REFERENCES)


def test_cider_equals_pycocoevalcap_times_100(caption_result, pycocoevalcap_reference):
    assert caption_result["score"] == caption_result["CIDEr"] == pytest.approx(100 * pycocoevalcap_reference["CIDEr"])
    assert caption_result["score"] == pytest.approx(217.0730, abs=1e-4)  # pinned regression value
    assert caption_result["n"] == 3


def test_bleu_and_rouge_equal_pycocoevalcap_times_100(caption_result, pycocoevalcap_reference):
    for n, value in enumerate(pycocoevalcap_reference["Bleu"], start=1):
        assert caption_result[f"Bleu_{n}"] == pytest.approx(100 * value)
    assert caption_result["ROUGE_L"] == pytest.approx(100 * pycocoevalcap_reference["ROUGE_L"])


def test_caption_errors():
    with pytest.raises(EvaluationError, match="not in the ground truth: img9"):
        score_caption({"img9": "a cat"}, CAPTION_REFERENCES)
    with pytest.raises(EvaluationError, match="no reference caption"):
        score_caption({"img1": "a cat"}, {"img1": []})


def test_val_and_test_report_the_same_scale(tmp_path, capsys, caption_result):
    """The same captions scored as Karpathy val and as Karpathy test give the same number, on the x100 scale."""
    images, predictions = [], {"val": [], "test": []}
    for split in predictions:
        for key, refs in CAPTION_REFERENCES.items():
            name = f"COCO_{split}_{key}"
            images.append({"filename": f"{name}.jpg", "split": split, "sentences": [{"raw": r} for r in refs]})
            if key in CAPTION_PREDICTIONS:
                predictions[split].append({"image_id": name, "caption": CAPTION_PREDICTIONS[key]})
    gt_path = tmp_path / "dataset_coco.json"
    gt_path.write_text(json.dumps({"images": images}))
    scores = {}
    for split, records in predictions.items():
        pred_path = tmp_path / f"{split}_predict.json"
        pred_path.write_text(json.dumps(records))
        assert evaluate.main(["caption", "--pred", str(pred_path), "--gt", str(gt_path), "--split", split]) == 0
        scores[split] = json.loads(capsys.readouterr().out)["score"]
    assert scores["val"] == scores["test"] == pytest.approx(caption_result["score"])
