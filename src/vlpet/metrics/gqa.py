"""GQA accuracy as VL-PET's ``GQAEvaluator`` computes it: exact string match, no normalisation."""

from collections.abc import Hashable, Mapping

from vlpet.metrics import check_known_ids


def score_gqa(predictions: Mapping[Hashable, str], labels: Mapping[Hashable, Mapping[str, float]]) -> dict:
    """Score GQA predictions on the paper's scale.

    Args:
        predictions: question id -> predicted answer.
        labels: question id -> ``{answer: score}`` (the ``label`` field of the GQA JSON, scores 1.0); may hold more
            questions than ``predictions``. A prediction earns its label's score, or 0 if it is not a key.

    Returns:
        ``{"score": accuracy in %, "n": questions scored}``.
    """
    check_known_ids(predictions, labels, "question ids")
    total = sum(labels[qid].get(answer, 0) for qid, answer in predictions.items())
    return {"score": 100 * total / len(predictions), "n": len(predictions)}
