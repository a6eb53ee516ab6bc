"""Re-score a predictions file: python -m vlpet evaluate {vqa,gqa,nlvr,caption} --pred PRED.json --gt GT.json

Prints one JSON line whose "score" is the headline metric on the paper's scale (accuracy in %, CIDEr x100);
NLVR2 adds "consistency". Predictions use the official result formats, the ground truth the official files:

  task     --pred                                        --gt
  vqa      [{"question_id": 1, "answer": "2"}]           vqa/v2_mscoco_val2014_annotations.json
  gqa      [{"question_id": "201", "answer": "red"}]     GQA/testdev.json (question_id, label)
  nlvr     [{"identifier": "test1-0-1-0", "label": 1}]   nlvr/test.json (identifier, label, uid)
           or [{"uid": "nlvr2_test_0", "label": 1}]
  caption  [{"image_id": 391895, "caption": "..."}]      COCO/dataset_coco.json, with --split

Only the predicted questions, images or examples are scored, as VL-PET does, for every task alike: the JSON line's
"coverage" gives how many of the ground truth's labelled items were predicted, and a warning on stderr says so when
some were not (VQA's Karpathy test split is expected to cover part of the val2014 annotations).
Caption image ids may be COCO ids (cocoid) or Karpathy image names (COCO_val2014_000000391895).
"""

import argparse
import json
import sys
from pathlib import Path

from vlpet.metrics import EvaluationError, check_known_ids, format_ids
from vlpet.metrics.caption import score_caption
from vlpet.metrics.gqa import score_gqa
from vlpet.metrics.nlvr import score_nlvr
from vlpet.metrics.vqa import SCORERS, score_vqa

CAPTION_SPLITS = ("train", "val", "test")  # Karpathy splits; "train" includes "restval", as in VL-PET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` arguments and help to ``parser`` (e.g. a sub-command parser; pair it with ``run``)."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("task", choices=("vqa", "gqa", "nlvr", "caption"), help="which task's metric to compute")
    parser.add_argument("--pred", type=Path, required=True, help="predictions JSON in the task's official format")
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth JSON in the task's official format")
    parser.add_argument("--scorer", choices=SCORERS, default="paper",
                        help="VQA only: 'paper' (VL-PET's evaluator, the paper's numbers) or 'official' (VQA tool)")
    parser.add_argument("--split", choices=CAPTION_SPLITS, default="test",
                        help="caption only: the Karpathy split of dataset_coco.json to score against")


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise EvaluationError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvaluationError(f"{what} file {path} is not readable JSON: {err}") from None


def _check_records(data, path: Path, what: str, fields: tuple[str, ...]) -> list[dict]:
    """Check that ``data`` is a list of JSON objects that all have ``fields``."""
    if not isinstance(data, list):
        expected = "a JSON list of objects with " + ", ".join(f'"{field}"' for field in fields)
        raise EvaluationError(f"{what} file {path}: expected {expected}, got a JSON {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict) or any(field not in item for field in fields):
            raise EvaluationError(f"{what} file {path}: item {index} is not an object with {', '.join(fields)}")
    return data


def _records(path: Path, what: str, fields: tuple[str, ...]) -> list[dict]:
    """Read a JSON file holding a list of objects that all have ``fields``."""
    return _check_records(_read_json(path, what), path, what, fields)


def _by_id(records: list[dict], key: str, value: str, path: Path, what: str) -> dict:
    """``{str(record[key]): record[value]}``; ids are compared as strings so 42 and "42" match."""
    table = {}
    for record in records:
        rid = str(record[key])
        if rid in table:
            raise EvaluationError(f"{what} file {path}: {key} {rid} appears more than once")
        table[rid] = record[value]
    return table


def _check_types(table: dict, kind: type, path: Path, what: str, field: str) -> None:
    wrong = [rid for rid, value in table.items() if not isinstance(value, kind)]
    if wrong:
        raise EvaluationError(f"{what} file {path}: {field} must be of type {kind.__name__} (ids {format_ids(wrong)})")


def _answers(args) -> dict[str, str]:
    """VQA/GQA predictions: ``[{"question_id", "answer"}]``."""
    answers = _by_id(_records(args.pred, "predictions", ("question_id", "answer")), "question_id", "answer",
                     args.pred, "predictions")
    _check_types(answers, str, args.pred, "predictions", '"answer"')
    return answers


def _evaluate_vqa(args) -> dict:
    data = _read_json(args.gt, "ground-truth")
    if not isinstance(data, dict) or "annotations" not in data:
        raise EvaluationError(f"ground-truth file {args.gt}: expected a VQA v2 annotation file "
                              '(an object with "annotations")')
    records = _check_records(data["annotations"], args.gt, "ground-truth", ("question_id", "answers"))
    try:
        annotations = {str(r["question_id"]): [a["answer"] for a in r["answers"]] for r in records}
    except (TypeError, KeyError):
        raise EvaluationError(f'ground-truth file {args.gt}: every "answers" entry needs an "answer"') from None
    if not all(isinstance(answer, str) for answers in annotations.values() for answer in answers):
        raise EvaluationError(f"ground-truth file {args.gt}: every answer must be a string")
    answer_types = {str(r["question_id"]): r.get("answer_type", "unknown") for r in records}
    result = _score(args, score_vqa, _answers(args), annotations, args.scorer, answer_types)
    return {"task": "vqa", "scorer": args.scorer, **result}


def _evaluate_gqa(args) -> dict:
    records = _records(args.gt, "ground-truth", ("question_id", "label"))
    labels = _by_id(records, "question_id", "label", args.gt, "ground-truth")
    _check_types(labels, dict, args.gt, "ground-truth", '"label"')
    return {"task": "gqa", **_score(args, score_gqa, _answers(args), labels)}


def _nlvr_predictions(args, uid_to_identifier: dict[str, str]) -> dict[str, object]:
    records = _records(args.pred, "predictions", ("label",))
    predictions = {}
    for index, record in enumerate(records):
        if "identifier" in record:
            identifier = str(record["identifier"])
        elif "uid" in record:
            identifier = uid_to_identifier.get(str(record["uid"]), f"uid {record['uid']}")
        else:
            raise EvaluationError(f'predictions file {args.pred}: item {index} has neither "identifier" nor "uid"')
        if identifier in predictions:
            raise EvaluationError(f"predictions file {args.pred}: {identifier} is predicted more than once")
        if record["label"] not in (0, 1):  # also admits true/false
            raise EvaluationError(f"predictions file {args.pred}: item {index} has label {record['label']!r}, not 0/1")
        predictions[identifier] = record["label"]
    return predictions


def _evaluate_nlvr(args) -> dict:
    records = _records(args.gt, "ground-truth", ("identifier", "label"))
    labels = _by_id(records, "identifier", "label", args.gt, "ground-truth")
    _check_types(labels, int, args.gt, "ground-truth", '"label"')
    uid_to_identifier = {str(r["uid"]): str(r["identifier"]) for r in records if "uid" in r}
    predictions = _nlvr_predictions(args, uid_to_identifier)
    _score(args, check_known_ids, predictions, labels, "identifiers")
    covered = {identifier: labels[identifier] for identifier in labels if identifier in predictions}
    return {"task": "nlvr", **_score(args, score_nlvr, predictions, covered, full=labels)}


def _karpathy_references(args) -> tuple[dict[str, list[str]], dict[str, str]]:
    """References of one Karpathy split keyed by image name, and a COCO id -> image name alias table."""
    data = _read_json(args.gt, "ground-truth")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise EvaluationError(f'ground-truth file {args.gt}: expected Karpathy\'s dataset_coco.json (with "images")')
    wanted = {"train", "restval"} if args.split == "train" else {args.split}
    references, aliases = {}, {}
    try:
        for image in data["images"]:
            if image["split"] in wanted:
                name = Path(image["filename"]).stem
                references[name] = [sentence["raw"] for sentence in image["sentences"]]
                if "cocoid" in image:
                    aliases[str(image["cocoid"])] = name
    except (TypeError, KeyError) as err:
        raise EvaluationError(f"ground-truth file {args.gt}: an image entry lacks {err}") from None
    if not references:
        raise EvaluationError(f"ground-truth file {args.gt}: no image has split {args.split!r}")
    return references, aliases


def _evaluate_caption(args) -> dict:
    references, aliases = _karpathy_references(args)
    records = _records(args.pred, "predictions", ("image_id", "caption"))
    named = [{"image": aliases.get(str(r["image_id"]), str(r["image_id"])), "caption": r["caption"]} for r in records]
    captions = _by_id(named, "image", "caption", args.pred, "predictions")
    _check_types(captions, str, args.pred, "predictions", '"caption"')
    return {"task": "caption", "split": args.split, **_score(args, score_caption, captions, references)}


def _score(args, scorer, predictions, truth, *rest, full=None) -> dict:
    """Run a metric; its complaints about the inputs are reported against both files. A metric's result gets the
    ``coverage`` of the ground truth (``full``, else ``truth``) by the predictions, with a warning when partial."""
    try:
        result = scorer(predictions, truth, *rest)
    except EvaluationError as err:
        raise EvaluationError(f"scoring {args.pred} against {args.gt}: {err}") from None
    if not isinstance(result, dict):
        return result
    labelled = len(full if full is not None else truth)
    predicted = sum(1 for key in predictions if key in (full if full is not None else truth))
    if predicted < labelled:
        note = (" (expected for VQA's Karpathy test split, a part of val2014)" if args.task == "vqa" else "")
        print(f"vlpet evaluate: warning: {args.pred} predicts {predicted} of the {labelled} labelled items of "
              f"{args.gt} ({100 * predicted / labelled:.1f}%); the score is over those {predicted} only{note}",
              file=sys.stderr)
    return {**result, "coverage": {"predicted": predicted, "labelled": labelled}}


_TASKS = {"vqa": _evaluate_vqa, "gqa": _evaluate_gqa, "nlvr": _evaluate_nlvr, "caption": _evaluate_caption}


def run(args: argparse.Namespace) -> int:
    """Evaluate parsed arguments (see ``add_arguments``): print the JSON line and return 0, or print an error to
    stderr and return 1."""
    try:
        result = _TASKS[args.task](args)
    except EvaluationError as err:
        print(f"vlpet evaluate: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vlpet evaluate``; ``argv`` excludes the ``evaluate`` word itself."""
    parser = argparse.ArgumentParser(prog="vlpet evaluate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
