"""VQAv2 accuracy with two exact scorers.

Both score a question the same way: for each of its ground-truth (GT) answers, ``min(1, #other GT answers equal
to the prediction / 3)``, averaged over the GT answers (the "10 choose 9" average), and report
``round(100 * mean over questions, 2)``. They differ only in which strings are normalised before comparing:

* ``"paper"`` reproduces VL-PET's ``VQAEvaluator.evaluate_raw`` (``src/vqa_clip_data.py``), which produced the
  paper's numbers: the prediction is always fully normalised (whitespace, punctuation, then lower-casing, number
  words, articles, contractions); the raw GT answers get only the punctuation step, and only when they are not all
  identical.
* ``"official"`` reproduces the VQA challenge tool (``GT-Vision-Lab/VQA``, ``vqaEval.py``): whitespace is cleaned on
  both sides; when the GT answers are not all identical, prediction and GT get the full normalisation; when they
  are all identical, neither is normalised.

So a prediction ``"two"`` against ten ``"2"`` scores 100 with ``paper`` and 0 with ``official``; ``"none"``
against ten ``"none"`` scores 0 with ``paper`` (the prediction becomes ``"0"``) and 100 with ``official``.
The VL-PET evaluator writes the processed GT back into its shared dicts; we work on copies. The step is
idempotent, so the numbers are the same (bar GT answers with more than 32 removable periods, see below).
"""

import re
from collections.abc import Callable, Hashable, Mapping, Sequence

from vlpet.metrics import EvaluationError, check_known_ids

SCORERS = ("paper", "official")

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})

# The tool's contraction table, written as {target: "the words it replaces"}. Its identity entries ("let's",
# "she's") and its capitalised keys ("Im", "Ive", "Id've", "I'dve") never change a lower-cased word, so they are
# left out. "somebody'd" -> "somebodyd" is the tool's own (reversed) entry, kept for exactness.
_CONTRACTION_TARGETS = {
    "'ow's'at": "'ow'sat 'ows'at ow's'at", "'twas": "twas", "ain't": "aint", "aren't": "arent", "can't": "cant",
    "could've": "couldve", "couldn't": "couldnt", "couldn't've": "couldn'tve couldnt've", "didn't": "didnt",
    "doesn't": "doesnt", "don't": "dont", "hadn't": "hadnt", "hadn't've": "hadn'tve hadnt've", "hasn't": "hasnt",
    "haven't": "havent", "he'd": "hed", "he'd've": "he'dve hed've", "he's": "hes", "how'd": "howd",
    "how'll": "howll", "how's": "hows", "isn't": "isnt", "it'd": "itd", "it'd've": "it'dve itd've", "it'll": "itll",
    "ma'am": "maam", "might've": "mightve", "mightn't": "mightnt", "mightn't've": "mightn'tve mightnt've",
    "must've": "mustve", "mustn't": "mustnt", "needn't": "neednt", "not've": "notve", "o'clock": "oclock",
    "oughtn't": "oughtnt", "shan't": "shant", "she'd've": "she'dve shed've", "should've": "shouldve",
    "shouldn't": "shouldnt", "shouldn't've": "shouldn'tve shouldnt've", "somebody'd've": "somebody'dve somebodyd've",
    "somebody'll": "somebodyll", "somebody's": "somebodys", "somebodyd": "somebody'd", "someone'd": "someoned",
    "someone'd've": "someone'dve someoned've", "someone'll": "someonell", "someone's": "someones",
    "something'd": "somethingd", "something'd've": "something'dve somethingd've", "something'll": "somethingll",
    "that's": "thats", "there'd": "thered", "there'd've": "there'dve thered've", "there're": "therere",
    "there's": "theres", "they'd": "theyd", "they'd've": "they'dve theyd've", "they'll": "theyll",
    "they're": "theyre", "they've": "theyve", "wasn't": "wasnt", "we'd've": "we'dve wed've", "we've": "weve",
    "weren't": "werent", "what'll": "whatll", "what're": "whatre", "what's": "whats", "what've": "whatve",
    "when's": "whens", "where'd": "whered", "where's": "wheres", "where've": "whereve", "who'd": "whod",
    "who'd've": "who'dve whod've", "who'll": "wholl", "who's": "whos", "who've": "whove", "why'll": "whyll",
    "why're": "whyre", "why's": "whys", "won't": "wont", "would've": "wouldve", "wouldn't": "wouldnt",
    "wouldn't've": "wouldn'tve wouldnt've", "y'all": "yall", "y'all'd've": "y'all'dve y'alld've yall'd've",
    "y'all'll": "y'allll yall'll", "you'd": "youd", "you'd've": "you'dve youd've", "you'll": "youll",
    "you're": "youre", "you've": "youve",
}  # fmt: skip
_CONTRACTIONS = {word: target for target, words in _CONTRACTION_TARGETS.items() for word in words.split()}

# Removed or replaced by a space; the apostrophe, colon and period are not in the list.
_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
# The tool calls ``pattern.sub("", text, re.UNICODE)``: the flag lands in ``count``, so at most 32 periods go.
_MAX_PERIODS_REMOVED = int(re.UNICODE)


def clean_whitespace(text: str) -> str:
    """Turn newlines and tabs into spaces and strip the ends (the tool's first step)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The tool's ``processPunctuation``.

    Each punctuation mark is deleted if that mark touches a space anywhere in ``text``, or if ``text`` contains
    digit-comma-digit (then every mark is deleted); otherwise it becomes a space. Then periods not followed by a
    digit are deleted (at most 32 of them).
    """
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or has_digit_comma else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_MAX_PERIODS_REMOVED)


def process_digit_article(text: str) -> str:
    """The tool's ``processDigitArticle``: lower-case, split on whitespace, map number words (and "none") to digits,
    drop articles, expand contractions, and join with single spaces."""
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """Full normalisation: whitespace, punctuation, then digits, articles and contractions."""
    return process_digit_article(process_punctuation(clean_whitespace(text)))


def _leave_one_out(prediction: str, answers: Sequence[str]) -> float:
    """Mean over the GT answers of min(1, matches among the *other* answers / 3)."""
    matches = sum(answer == prediction for answer in answers)
    per_answer = [min(1, (matches - (answer == prediction)) / 3) for answer in answers]
    return sum(per_answer) / len(per_answer)


def _paper_accuracy(prediction: str, answers: Sequence[str]) -> float:
    prediction = normalize_answer(prediction)
    if len(set(answers)) > 1:
        answers = [process_punctuation(answer) for answer in answers]
    return _leave_one_out(prediction, answers)


def _official_accuracy(prediction: str, answers: Sequence[str]) -> float:
    prediction = clean_whitespace(prediction)
    answers = [clean_whitespace(answer) for answer in answers]
    if len(set(answers)) > 1:
        prediction = normalize_answer(prediction)
        answers = [normalize_answer(answer) for answer in answers]
    return _leave_one_out(prediction, answers)


_QUESTION_SCORERS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "paper": _paper_accuracy,
    "official": _official_accuracy,
}


def question_accuracy(prediction: str, answers: Sequence[str], scorer: str = "paper") -> float:
    """Accuracy of one prediction against its GT answers (usually 10), as a fraction in [0, 1]."""
    if scorer not in _QUESTION_SCORERS:
        raise ValueError(f"unknown VQA scorer {scorer!r}; choose one of {', '.join(SCORERS)}")
    if not answers:
        raise EvaluationError("a question has no ground-truth answers")
    return _QUESTION_SCORERS[scorer](prediction, list(answers))


def _percent(values: list[float]) -> float:
    return round(100 * sum(values) / len(values), 2)


def score_vqa(
    predictions: Mapping[Hashable, str],
    annotations: Mapping[Hashable, Sequence[str]],
    scorer: str = "paper",
    answer_types: Mapping[Hashable, str] | None = None,
) -> dict:
    """Score VQA predictions on the paper's scale.

    Args:
        predictions: question id -> predicted answer (the decoded model output).
        annotations: question id -> the raw GT answers (the 10 ``answers[*].answer`` of the v2 annotation files).
            May hold more questions than ``predictions``; only the predicted questions are scored, as VL-PET does.
        scorer: ``"paper"`` (VL-PET's evaluator, the default) or ``"official"`` (the VQA challenge tool).
        answer_types: optional question id -> answer type ("yes/no", "number", "other").

    Returns:
        ``{"score": accuracy in % rounded to 2 decimals, "n": questions scored}``, plus ``"per_answer_type"`` when
        ``answer_types`` is given.
    """
    check_known_ids(predictions, annotations, "question ids")
    per_question = {qid: question_accuracy(pred, annotations[qid], scorer) for qid, pred in predictions.items()}
    result = {"score": _percent(list(per_question.values())), "n": len(per_question)}
    if answer_types is not None:
        by_type: dict[str, list[float]] = {}
        for qid, accuracy in per_question.items():
            by_type.setdefault(answer_types[qid], []).append(accuracy)
        result["per_answer_type"] = {kind: _percent(values) for kind, values in by_type.items()}
    return result
