"""VQA accuracy: both scorers on hand-worked questions.

Leave-one-out with k GT answers equal to the (normalised) prediction, out of 10: an answer that matches sees k-1
matches among the other nine, one that does not sees k, and each scores min(1, matches/3). So
k=0 -> 0; k=1 -> (1*0 + 9*1/3)/10 = 0.3; k=2 -> (2*1/3 + 8*2/3)/10 = 0.6; k=3 -> (3*2/3 + 7*1)/10 = 0.9; k>=4 -> 1.
"""

import copy

import pytest

from vlpet.metrics import EvaluationError
from vlpet.metrics.vqa import (
    _CONTRACTIONS,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    question_accuracy,
    score_vqa,
)


def gt(*counts):
    """gt(("red", 2), ("blue", 8)) -> the 10 GT answer strings."""
    return [answer for answer, n in counts for _ in range(n)]


# id: (prediction, GT answers, paper accuracy, official accuracy, answer type)
# paper: prediction always fully normalised; GT only punctuation-processed, and only if not all identical.
# official: whitespace cleaned on both; if GT not all identical both are fully normalised, else neither.
QUESTIONS = {
    # plain leave-one-out, no normalisation involved
    1: ("yes", gt(("yes", 10)), 1.0, 1.0, "yes/no"),  # k=10
    2: ("red", gt(("red", 1), ("blue", 9)), 0.3, 0.3, "other"),  # k=1
    3: ("red", gt(("red", 2), ("blue", 8)), 0.6, 0.6, "other"),  # k=2
    4: ("red", gt(("red", 3), ("blue", 7)), 0.9, 0.9, "other"),  # k=3
    5: ("green", gt(("red", 5), ("blue", 5)), 0.0, 0.0, "other"),  # k=0
    # lower-casing
    6: ("Yes", gt(("yes", 10)), 1.0, 0.0, "yes/no"),  # official: GT unanimous -> "Yes" kept, k=0
    7: ("Yes", gt(("yes", 6), ("no", 4)), 1.0, 1.0, "yes/no"),  # both: "yes", k=6
    25: ("yes", gt(("Yes", 5), ("no", 5)), 0.0, 1.0, "yes/no"),  # paper: GT "Yes" not lower-cased, k=0
    # number words (and "none" -> "0")
    8: ("two", gt(("2", 10)), 1.0, 0.0, "number"),  # paper: "two" -> "2", k=10; official: unanimous, k=0
    9: ("two", gt(("two", 8), ("2", 2)), 0.6, 1.0, "number"),  # paper: GT "two" kept, k=2; official: all "2"
    10: ("none", gt(("none", 10)), 0.0, 1.0, "number"),  # paper: "none" -> "0" vs "none", k=0
    11: ("none", gt(("none", 7), ("0", 3)), 0.9, 1.0, "number"),  # paper: "0", k=3; official: all "0"
    # articles
    12: ("the dog", gt(("dog", 10)), 1.0, 0.0, "other"),  # official: unanimous, "the dog" kept
    13: ("a dog", gt(("dog", 6), ("cat", 4)), 1.0, 1.0, "other"),  # both: "dog", k=6
    # contractions
    14: ("dont", gt(("dont", 5), ("no", 5)), 0.0, 1.0, "other"),  # paper: "don't" vs GT "dont", k=0
    15: ("dont", gt(("don't", 5), ("no", 5)), 1.0, 1.0, "other"),  # both: "don't", k=5
    # punctuation: a mark becomes a space, or is deleted when it touches a space
    16: ("t-shirt", gt(("t shirt", 6), ("shirt", 4)), 1.0, 1.0, "other"),  # "-" -> " ", k=6
    17: ("black - white", gt(("black white", 3), ("black and white", 7)), 0.9, 0.9, "other"),  # "-" deleted, k=3
    28: ("left/right", gt(("left right", 4), ("left", 6)), 1.0, 1.0, "other"),  # "/" -> " ", k=4
    26: ("yes!", gt(("yes!", 10)), 0.0, 1.0, "yes/no"),  # paper: pred "yes" vs unanimous GT "yes!" kept
    # digit-comma-digit: every mark is deleted
    18: ("1,000", gt(("1000", 10)), 1.0, 0.0, "number"),  # paper: "1000", k=10; official: unanimous, kept
    19: ("1,000", gt(("1,000", 5), ("1000", 5)), 1.0, 1.0, "number"),  # both: GT and pred all "1000"
    # periods: deleted unless a digit follows
    20: ("yes.", gt(("yes", 9), ("no", 1)), 1.0, 1.0, "yes/no"),  # "yes", k=9
    21: ("2.5", gt(("2.5", 3), ("25", 7)), 0.9, 0.9, "number"),  # "2.5" kept, k=3 (not "25", k=7)
    # whitespace: newlines/tabs -> spaces, ends stripped, runs collapsed by the split/join
    22: (" yes\n", gt(("yes", 10)), 1.0, 1.0, "yes/no"),  # both strip the prediction
    23: ("red\tcar", gt(("red car", 4), ("car", 6)), 1.0, 1.0, "other"),  # "red car", k=4
    24: ("yes", gt(("yes ", 8), ("no", 2)), 0.0, 1.0, "yes/no"),  # paper never strips GT: "yes " != "yes"
    27: ("fire   hydrant", gt(("fire hydrant", 5), ("hydrant", 5)), 1.0, 1.0, "other"),  # "fire hydrant", k=5
}
PREDICTIONS = {qid: q[0] for qid, q in QUESTIONS.items()}
ANNOTATIONS = {qid: q[1] for qid, q in QUESTIONS.items()}
ANSWER_TYPES = {qid: q[4] for qid, q in QUESTIONS.items()}


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
@pytest.mark.parametrize("scorer, column", [("paper", 2), ("official", 3)])
def test_question_accuracy_hand_worked(qid, scorer, column):
    prediction, answers = QUESTIONS[qid][:2]
    assert question_accuracy(prediction, answers, scorer) == pytest.approx(QUESTIONS[qid][column])


def test_scorers_disagree_on_the_fixture():
    disagree = sorted(qid for qid, q in QUESTIONS.items() if q[2] != q[3])
    assert disagree == [6, 8, 9, 10, 11, 12, 14, 18, 24, 25, 26]


def test_paper_overall_and_per_answer_type():
    # ones: 1 6 7 8 12 13 15 16 18 19 20 22 23 27 28 (15); fractions .3+.6+.9+.6+.9+.9+.9 = 5.1 -> 20.1 / 28
    # yes/no (1 6 7 20 22 24 25 26): 5/8; number (8 9 10 11 18 19 21): 1+.6+0+.9+1+1+.9 = 5.4/7;
    # other (13 questions): .3+.6+.9+0+1+1+0+1+1+.9+1+1+1 = 9.7/13
    result = score_vqa(PREDICTIONS, ANNOTATIONS, "paper", ANSWER_TYPES)
    assert result["score"] == 71.79  # 2010/28 = 71.7857...
    assert result["n"] == 28
    assert result["per_answer_type"] == {"yes/no": 62.5, "number": 77.14, "other": 74.62}


def test_official_overall_and_per_answer_type():
    # ones: 1 7 9 10 11 13 14 15 16 19 20 22 23 24 25 26 27 28 (18); fractions .3+.6+.9+.9+.9 = 3.6 -> 21.6 / 28
    # yes/no: 7/8 (only 6 fails); number: 0+1+1+1+0+1+.9 = 4.9/7; other: 9.7/13 (12 and 14 swap with paper)
    result = score_vqa(PREDICTIONS, ANNOTATIONS, "official", ANSWER_TYPES)
    assert result["score"] == 77.14  # 2160/28 = 77.1428...
    assert result["per_answer_type"] == {"yes/no": 87.5, "number": 70.0, "other": 74.62}


def test_default_scorer_is_paper_and_types_are_optional():
    assert score_vqa(PREDICTIONS, ANNOTATIONS) == {"score": 71.79, "n": 28}


def test_inputs_are_not_mutated_and_repeat_calls_agree():
    predictions, annotations = copy.deepcopy(PREDICTIONS), copy.deepcopy(ANNOTATIONS)
    first = score_vqa(predictions, annotations, "paper")
    assert (predictions, annotations) == (PREDICTIONS, ANNOTATIONS)
    assert score_vqa(predictions, annotations, "paper") == first


def test_only_predicted_questions_are_scored():
    result = score_vqa({2: "red", 3: "red"}, ANNOTATIONS, "official")  # (0.3 + 0.6) / 2
    assert result == {"score": 45.0, "n": 2}


def test_fewer_than_ten_answers_use_the_same_rule():
    # each "cat" sees 2 matching others -> 2/3
    assert question_accuracy("cat", ["cat", "cat", "cat"], "official") == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("t-shirt", "t shirt"),  # no space next to "-": replaced by a space
        ("t - shirt", "t  shirt"),  # " -" occurs: deleted
        ("(a)-b c!", " a  b c "),  # no mark touches a space: each becomes a space
        ("1,000-2,000", "10002000"),  # digit-comma-digit: every mark deleted
        ("yes.", "yes"),  # period not before a digit: deleted
        ("3.5 and .5", "3.5 and .5"),  # period before a digit: kept
        ("rock'n'roll: ok", "rock'n'roll: ok"),  # apostrophe and colon are not in the list
        ("." * 40, "." * 8),  # the tool deletes at most 32 periods
    ],
)
def test_process_punctuation(text, expected):
    assert process_punctuation(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ten  Dogs", "10 dogs"),  # lower-case, number word, whitespace runs collapsed
        ("none", "0"),
        ("the an a cat", "cat"),  # articles dropped
        ("whats up", "what's up"),
        ("it'dve", "it'd've"),
        ("y'allll", "y'all'll"),
        ("somebody'd", "somebodyd"),  # the tool's reversed entry
        ("Im", "im"),  # the tool's capitalised keys never match a lower-cased word
    ],
)
def test_process_digit_article(text, expected):
    assert process_digit_article(text) == expected


def test_contraction_table_size():
    # the tool's 120 entries minus 4 capitalised keys and 2 identities ("let's", "she's")
    assert len(_CONTRACTIONS) == 114


def test_normalize_answer_chains_all_steps():
    assert normalize_answer("\tThe Two-Dogs!\n") == "2 dogs"


def test_errors():
    with pytest.raises(EvaluationError, match="not in the ground truth: 99"):
        score_vqa({99: "yes"}, ANNOTATIONS)
    with pytest.raises(EvaluationError, match="no predictions"):
        score_vqa({}, ANNOTATIONS)
    with pytest.raises(EvaluationError, match="no ground-truth answers"):
        score_vqa({1: "yes"}, {1: []})
    with pytest.raises(ValueError, match="unknown VQA scorer"):
        score_vqa({1: "yes"}, ANNOTATIONS, scorer="lxmert")
