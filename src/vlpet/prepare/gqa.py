"""GQA 1.2 → ``GQA/{train,valid,testdev}.json`` (+ ``submit.json``) and the answer vocabulary: LXMERT's
``process_data.py`` / ``process_submit_data.py`` (data-prep spec §2.5, §2.6).

One record per question, in file order: ``{"question_id": the key (str, leading zeros kept), "img_id": imageId,
"sent": question}`` plus ``"label": {answer: 1.0}`` when the question has an answer (not filtered by the vocabulary).
"""

from __future__ import annotations

from pathlib import Path

from .manifest import origin
from .raw import PrepareError, RawIndex, StagedWrites, get, read_original
from .vocab import stage_vocab

SPLIT_FILES = {"train": "train_balanced_questions.json", "valid": "val_balanced_questions.json",
               "testdev": "testdev_balanced_questions.json"}
SUBMIT_FILE = "submission_all_questions.json"


def records(path: Path) -> list[dict]:
    """The records of one GQA question file."""
    questions = read_original(path)
    if not isinstance(questions, dict):
        raise PrepareError(f"{path}: expected one JSON object {{question_id: question}}")
    out = []
    for key, question in questions.items():
        rec = {"question_id": str(key), "img_id": get(question, "imageId", path, key),
               "sent": get(question, "question", path, key)}
        if "answer" in question:
            rec["label"] = {question["answer"]: 1.0}
        out.append(rec)
    return out


def locate(index: RawIndex, fallback: bool = False) -> dict[str, Path]:
    """The three balanced question files by output split (``fallback`` is the Karpathy option; unused here)."""
    return {split: index.find(name, origin("gqa", name)) for split, name in SPLIT_FILES.items()}


def prepare_gqa(index: RawIndex, out: Path, staged: StagedWrites) -> list[str]:
    """Write the GQA/ folder; ``submit.json`` only when ``submission_all_questions.json`` is below RAW."""
    paths = locate(index)
    submit = index.optional(SUBMIT_FILE)
    if submit is not None:
        paths["submit"] = submit
    splits = {split: records(path) for split, path in paths.items()}
    for split, recs in splits.items():
        staged.write_json(out / "GQA" / f"{split}.json", recs)
    stage_vocab("gqa", out, staged)
    lines = ["gqa: " + " / ".join(f"{split} {len(recs):,}" for split, recs in splits.items()) + " questions"]
    if submit is None:
        lines.append(f"gqa: no {SUBMIT_FILE} below RAW, so no GQA/submit.json (only needed with --testing)")
    return lines
