"""Task metrics, each returned on the paper's reporting scale (accuracy in %, CIDEr x100).

The scale lives here and nowhere else, so validation and test numbers can never disagree:

* ``vqa.score_vqa``: VQAv2 accuracy, with the VL-PET ("paper") or the VQA challenge ("official") scorer.
* ``gqa.score_gqa``: GQA exact-match accuracy.
* ``nlvr.score_nlvr``: NLVR2 accuracy and consistency.
* ``caption.score_caption``: COCO CIDEr-D (plus BLEU-1..4 and ROUGE-L) through ``pycocoevalcap``.
"""


class EvaluationError(ValueError):
    """A problem the user can fix: predictions that do not fit the ground truth, or a missing evaluation tool."""


def format_ids(ids, limit: int = 5) -> str:
    """Show at most ``limit`` ids of a collection, for error messages."""
    ids = sorted(map(str, ids))
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown}, ... ({len(ids)} in all)"


def check_known_ids(predicted, known, what: str = "ids") -> None:
    """Raise ``EvaluationError`` if a predicted id is not in ``known``."""
    if not predicted:
        raise EvaluationError("there are no predictions to score")
    unknown = [i for i in predicted if i not in known]
    if unknown:
        shown = format_ids(unknown)
        raise EvaluationError(f"{len(unknown)} prediction(s) have {what} not in the ground truth: {shown}")
