"""NLVR2 accuracy and consistency as VL-PET's ``NLVR2Evaluator`` computes them."""

from collections.abc import Mapping

from vlpet.metrics import EvaluationError, check_known_ids, format_ids


def sentence_group(identifier: str) -> str:
    """The consistency group of an example: its identifier with the 3rd ``-`` field blanked.

    ``"test1-0-1-0"`` -> ``"test1-0--0"``: the same sentence paired with different images.
    """
    fields = identifier.split("-")
    if len(fields) < 3:
        raise EvaluationError(f"NLVR2 identifier {identifier!r} does not have the form split-set-pair-sentence")
    fields[2] = ""
    return "-".join(fields)


def score_nlvr(predictions: Mapping[str, int], labels: Mapping[str, int]) -> dict:
    """Score NLVR2 predictions on the paper's scale.

    Args:
        predictions: identifier (e.g. ``"test1-0-1-0"``) -> predicted label, 0/1 or bool.
        labels: identifier -> GT label (0/1). Every labelled example must have a prediction, as in VL-PET.

    Returns:
        ``{"score": accuracy in %, "consistency": % of sentence groups with every example right, "n": examples}``.
    """
    check_known_ids(predictions, labels, "identifiers")
    missing = [identifier for identifier in labels if identifier not in predictions]
    if missing:
        raise EvaluationError(f"{len(missing)} labelled example(s) have no prediction: {format_ids(missing)}")
    group_correct: dict[str, bool] = {}
    num_correct = 0
    for identifier, label in labels.items():
        correct = int(predictions[identifier]) == int(label)
        num_correct += correct
        group = sentence_group(identifier)
        group_correct[group] = group_correct.get(group, True) and correct
    return {
        "score": 100 * num_correct / len(labels),
        "consistency": 100 * sum(group_correct.values()) / len(group_correct),
        "n": len(labels),
    }
