"""Video-text metrics as the official multitask video trainer computes them (pipeline spec §5.6, §9 items 23-24).

* TVQA / How2QA: accuracy in % = exact matches of the generated string with "a<answer_idx>", divided by the number
  of ground-truth questions (``TVQAEvaluator.all_type_accuracy`` x100); per-type (TVQA: per show) accuracies too.
* TVC / YC2C: CIDEr x100 (same scorer and scale as the COCO captions, ``caption.score_caption``), with **one
  reference per (clip, description) pair**: every clip is decoded once per description and each pair is scored
  against its own description. This is not the official multi-reference VALUE protocol; numbers compare across runs
  of this code only.
* Model selection: the unweighted mean of the four validation scores, only when the task string contains exactly
  "tvqa,how2qa,tvc,yc2c" (``selection_score``).
* Test splits are unlabelled: ``write_value_submission`` writes the VALUE-style prediction files the official code
  dumps (QA: ``{qid: int}`` JSON, the digit parsed by ``int(pred[1])`` with 0 as fallback; captions: JSON lines with
  ``vid_name``, ``clip_id``, (TVC) ``ts`` and ``descs: [{"desc": ...}]``).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from vlpet.metrics import EvaluationError, check_known_ids

QA_TASKS = ("tvqa", "how2qa")
CAPTION_TASKS = ("tvc", "yc2c")
SELECTION_TASKS = "tvqa,how2qa,tvc,yc2c"
# File names of the official dumps (src/multitask_video.py); the _best_avg_valid_model variants add that suffix.
SUBMISSION_FILES = {"tvqa": "tvqa_test_predictions.json", "how2qa": "how2qa_test_public_predictions.json",
                    "tvc": "tvc_test_predictions.jsonl", "yc2c": "yc2c_test_predictions.jsonl"}


def score_video_qa(predictions: Mapping[Hashable, str], answers: Mapping[Hashable, str],
                   types: Mapping[Hashable, str] | None = None) -> dict:
    """Multiple-choice accuracy of generated choice labels.

    Args:
        predictions: question id -> generated string (correct iff it equals the answer exactly, e.g. "a2").
        answers: question id -> "a<answer_idx>" for every ground-truth question (the denominator).
        types: question id -> type (show name for TVQA); gives ``per_type`` accuracies.

    Returns:
        ``{"score": accuracy %, "accuracy": accuracy %, "correct", "n", "per_type": {type: %}}``.
    """
    check_known_ids(predictions, answers, "question ids")
    correct = {qid for qid, pred in predictions.items() if pred == answers[qid]}
    accuracy = 100.0 * len(correct) / len(answers)
    result = {"score": accuracy, "accuracy": accuracy, "correct": len(correct), "n": len(answers), "per_type": {}}
    if types is not None:
        totals: dict[str, list[int]] = {}
        for qid in answers:
            count = totals.setdefault(types[qid], [0, 0])
            count[0] += qid in correct
            count[1] += 1
        result["per_type"] = {t: 100.0 * c / n for t, (c, n) in sorted(totals.items())}
    return result


def score_video_caption(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """CIDEr x100 of paired (prediction, single reference) lists, each pair scored as its own item.

    Returns ``caption.score_caption``'s dict (``score`` = ``CIDEr`` x100; BLEU and ROUGE-L come along x100, the
    official video validation logs CIDEr only).
    """
    if len(predictions) != len(references):
        raise EvaluationError(f"{len(predictions)} predictions for {len(references)} references: the caption "
                              "validation pairs every decoded example with its own description")
    if not predictions:
        raise EvaluationError("there are no predictions to score")
    from vlpet.metrics.caption import score_caption

    return score_caption(dict(enumerate(predictions)), {i: [ref] for i, ref in enumerate(references)})


def score_video(task: str, predictions, ground_truth) -> dict:
    """Validation score of one task: ``predictions`` is {qid: text} for QA (``ground_truth`` =
    ``dataset.ground_truth()``, i.e. (answers, types)), or the list of generated captions in dataset order for
    captioning (``ground_truth`` = the list of references)."""
    if task in QA_TASKS:
        answers, types = ground_truth
        return score_video_qa(predictions, answers, types)
    if task in CAPTION_TASKS:
        return score_video_caption(predictions, ground_truth)
    raise ValueError(f"unknown video task {task!r}")


def selection_score(scores: Mapping[str, float], tasks: str | Sequence[str] = SELECTION_TASKS) -> float | None:
    """The unweighted mean of the TVQA, How2QA, TVC and YC2C validation scores (accuracy %, CIDEr x100), or None
    when the task string does not contain "tvqa,how2qa,tvc,yc2c" (the official condition, a substring test)."""
    tasks = tasks if isinstance(tasks, str) else ",".join(tasks)
    if SELECTION_TASKS not in tasks:
        return None
    missing = [t for t in SELECTION_TASKS.split(",") if t not in scores]
    if missing:
        raise EvaluationError(f"the selection score needs the validation scores of {', '.join(missing)}")
    return sum(float(scores[t]) for t in SELECTION_TASKS.split(",")) / 4


def parse_choice(prediction: str) -> int:
    """The choice index of a generated label as the official dump reads it: ``int(pred[1])``, 0 if that fails."""
    try:
        return int(prediction[1])
    except (IndexError, ValueError, TypeError):
        return 0


def caption_record(task: str, prediction: Mapping) -> dict:
    """One submission line: ``vid_name``, ``clip_id``, (TVC) ``ts``, ``descs: [{"desc": ...}]``."""
    try:
        record = {"vid_name": prediction["vid_name"], "clip_id": prediction["clip_id"]}
        if task == "tvc":
            record["ts"] = prediction["ts"]
        record["descs"] = [{"desc": prediction["desc"]}]
    except KeyError as err:
        raise EvaluationError(f"a {task} prediction lacks {err}; give vid_name, clip_id"
                              f"{', ts' if task == 'tvc' else ''} and desc") from None
    return record


def write_value_submission(task: str, predictions, path: str | Path) -> Path:
    """Write the VALUE-style prediction file of an unlabelled test split, as the official trainer dumps it.

    Args:
        task: tvqa, how2qa, tvc or yc2c.
        predictions: QA: {qid: generated string} (or a list of ``{"question_id", "answer"}`` dicts, later ones
            winning); captions: a list of dicts with ``vid_name``, ``clip_id``, ``ts`` (TVC) and ``desc``.
        path: the file to write (a folder gets the official file name, see ``SUBMISSION_FILES``).

    QA files are one JSON object {qid: choice index}; caption files have one JSON object per line.
    """
    if task not in SUBMISSION_FILES:
        raise ValueError(f"unknown video task {task!r}")
    path = Path(path)
    if path.is_dir():
        path = path / SUBMISSION_FILES[task]
    path.parent.mkdir(parents=True, exist_ok=True)
    if task in QA_TASKS:
        if not isinstance(predictions, Mapping):
            predictions = {p["question_id"]: p["answer"] for p in predictions}
        path.write_text(json.dumps({qid: parse_choice(pred) for qid, pred in predictions.items()}))
    else:
        path.write_text("".join(json.dumps(caption_record(task, p)) + "\n" for p in predictions))
    return path


def caption_predictions(batch: Mapping, generated: Sequence[str]) -> list[dict]:
    """Submission records of one test batch of TVC/YC2C and its generated captions: ``clip_id`` from the batch's
    ``question_ids`` (which hold the clip ids on test splits, as the official dump reads them), ``vid_name`` from
    ``video_ids``, ``ts`` from ``tss`` (TVC)."""
    records = []
    for k, desc in enumerate(generated):
        record = {"vid_name": batch["video_ids"][k], "clip_id": batch["question_ids"][k], "desc": desc}
        if "tss" in batch:
            record["ts"] = batch["tss"][k]
        records.append(record)
    return records
