"""VQA v2 → ``vqa/karpathy_{train,val,test}.json``, the raw annotation files and the answer vocabulary (data-prep
spec §2.2-2.4).

Every train2014 + val2014 question is kept, re-split by the Karpathy split of its image (train and restval → train).
The label is hengyuan-hu's ``compute_target`` soft score over the 10 **raw** answers: answers are not normalised, so a
raw form outside the (normalised) vocabulary is silently dropped, and a label may be ``{}``.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

from ..metrics.vqa import process_digit_article, process_punctuation
from . import karpathy
from .karpathy import KARPATHY_FILE, karpathy_map, load_karpathy
from .manifest import origin
from .raw import PrepareError, RawIndex, StagedWrites, get, read_original
from .vocab import stage_vocab, vocab_file

SUBSETS = ("train2014", "val2014")
# is_topk_optimal: unpublished; the three candidates of the spec (§2.4 step 5), all counted in the summary.
TOPK_RULES = ("answer-in-vocab", "labelled", "best-score")
DEFAULT_TOPK_RULE = "answer-in-vocab"
MIN_OCCURRENCE = 9  # compute_softscore.py: filter_answers(answers, 9)


def questions_file(subset: str) -> str:
    return f"v2_OpenEnded_mscoco_{subset}_questions.json"


def annotations_file(subset: str) -> str:
    return f"v2_mscoco_{subset}_annotations.json"


def get_score(count: int) -> float | int:
    """hengyuan-hu ``get_score``: 1 → 0.3, 2 → 0.6, 3 → 0.9, 4 or more → the int 1."""
    return (0, 0.3, 0.6, 0.9)[count] if count < 4 else 1


def soft_label(answers: list[dict], vocab: dict) -> dict:
    """{answer: score} over the raw answer strings that are vocabulary keys (keys sorted)."""
    counts = Counter(a["answer"] for a in answers)
    return {a: get_score(n) for a, n in sorted(counts.items()) if a in vocab}


@functools.lru_cache(maxsize=None)  # answers repeat a lot; the normalisation is the slow part
def preprocess_answer(text: str) -> str:
    """hengyuan-hu ``preprocess_answer``: the VQA-eval punctuation and digit/article steps, then commas removed."""
    return process_digit_article(process_punctuation(text)).replace(",", "")


def is_topk_optimal(rule: str, annotation: dict, label: dict, vocab: dict) -> bool:
    """One candidate definition of ``is_topk_optimal`` (spec §2.4 step 5)."""
    if rule == "answer-in-vocab":
        return preprocess_answer(annotation["multiple_choice_answer"]) in vocab
    if rule == "labelled":
        return bool(label)
    best = max(Counter(a["answer"] for a in annotation["answers"]).values(), default=0)
    return max(label.values(), default=0) == get_score(best)


def question_texts(paths: list[Path]) -> dict[int, str]:
    """{question_id: question} over the question files."""
    texts = {}
    for path in paths:
        for index, q in enumerate(get(read_original(path), "questions", path, "root")):
            texts[get(q, "question_id", path, index)] = get(q, "question", path, index)
    return texts


def record(annotation: dict, subset: str, texts: dict, vocab: dict, path: Path, index: int) -> dict:
    """One karpathy_* record of one annotation."""
    for key in ("image_id", "question_id", "answers", "answer_type", "question_type", "multiple_choice_answer"):
        get(annotation, key, path, index)
    question_id = annotation["question_id"]
    if question_id not in texts:
        raise PrepareError(f"{path}: question {question_id} is in no {questions_file(subset)}")
    return {"answer_type": annotation["answer_type"], "img_id": f"COCO_{subset}_{annotation['image_id']:012d}",
            "label": soft_label(annotation["answers"], vocab), "question_id": question_id,
            "question_type": annotation["question_type"], "sent": texts[question_id]}


def locate(index: RawIndex, fallback: bool = False) -> dict[str, Path]:
    """Every original file VQA needs, the Karpathy split's included (a missing one is an error naming it and its
    source)."""
    names = [f(s) for s in SUBSETS for f in (questions_file, annotations_file)]
    return {**{name: index.find(name, origin("vqa", name)) for name in names}, **karpathy.locate(index, fallback)}


def build_splits(paths: dict, kmap: dict, vocab: dict, topk_rule: str,
                 with_answers: bool) -> tuple[dict, Counter, set]:
    """{train, val, test: records}, the is_topk_optimal counts of every rule on test, and the answer set re-derived
    by hengyuan-hu's ``filter_answers(..., 9)`` (a check of the vocabulary: the set, not the order)."""
    texts = question_texts([paths[questions_file(s)] for s in SUBSETS])
    splits, topk, occurrences = {"train": [], "val": [], "test": []}, Counter(), {}
    for subset in SUBSETS:
        path = paths[annotations_file(subset)]
        for index, annotation in enumerate(get(read_original(path), "annotations", path, "root")):
            rec = record(annotation, subset, texts, vocab, path, index)
            if rec["img_id"] not in kmap:
                raise PrepareError(f"{path}: image {rec['img_id']} of question {rec['question_id']} is not in "
                                   f"the Karpathy split {KARPATHY_FILE} (it must cover every image)")
            split = kmap[rec["img_id"]]
            if with_answers:
                rec["answers"] = annotation["answers"]
            if split == "test":
                for rule in TOPK_RULES:
                    topk[rule, is_topk_optimal(rule, annotation, rec["label"], vocab)] += 1
                rec["is_topk_optimal"] = is_topk_optimal(topk_rule, annotation, rec["label"], vocab)
            splits[split].append(rec)
            answer = preprocess_answer(annotation["multiple_choice_answer"])
            occurrences.setdefault(answer, set()).add(rec["question_id"])
    return splits, topk, {a for a, ids in occurrences.items() if len(ids) >= MIN_OCCURRENCE}


def prepare_vqa(index: RawIndex, out: Path, staged: StagedWrites, topk_rule: str = DEFAULT_TOPK_RULE,
                with_answers: bool = False, karpathy_fallback: bool = False) -> list[str]:
    """Stage the vqa/ folder; returns the summary lines."""
    paths = locate(index, karpathy_fallback)
    data, where = load_karpathy(index, karpathy_fallback)
    kmap = karpathy_map(data, where or "the rebuilt Karpathy split")
    with open(vocab_file("vqa/trainval_ans2label.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    splits, topk, derived = build_splits(paths, kmap, vocab, topk_rule, with_answers)
    for split, records in splits.items():
        staged.write_json(out / "vqa" / f"karpathy_{split}.json", records)
    for subset in SUBSETS:
        staged.copy(paths[annotations_file(subset)], out / "vqa" / annotations_file(subset))
    stage_vocab("vqa", out, staged)
    counts = " / ".join(f"{split} {len(records):,}" for split, records in splits.items())
    rules = ", ".join(f"{rule} {topk[rule, True]:,}/{topk[rule, False]:,}" for rule in TOPK_RULES)
    return [f"vqa: karpathy {counts} questions",
            f"vqa: is_topk_optimal ({topk_rule} written) True/False on test by rule: {rules} "
            "(published 24,722/1,558)",
            f"vqa: answers chosen by >= {MIN_OCCURRENCE} questions: {len(derived):,}, of which "
            f"{len(derived & vocab.keys()):,} in the {len(vocab):,}-answer vocabulary (a full rebuild gives all)"]
