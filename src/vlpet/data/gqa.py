"""GQA: "gpa: <question>" (the official prompt, typo included) truncated to 20 tokens; the target is the answer
(sampled by score; GQA labels are {answer: 1.0}), not truncated, and the loss is not weighted (pipeline spec §2.2)."""

from __future__ import annotations

from .base import IGNORE_INDEX, ImageTextDataset, pad, sample_answer

PROMPT = "gpa: "
PROMPT_FIXED = "gqa: "
INPUT_MAX_LENGTH = 20


class GQADataset(ImageTextDataset):
    """Questions of ``GQA/<split>.json`` (``train,valid`` for training, ``testdev`` for validation, ``submit``).

    Images come from ``VG/`` for train/valid and ``GQA/`` for testdev/submit. ``fix_prompt_typo=True`` uses
    "gqa: " instead of the official "gpa: " (ignored when ``prompt`` is given). Batch lists: ``question_ids``,
    ``sents``, ``img_ids`` and, for labelled splits, ``answers``, ``all_answers``, ``labels``.
    """

    task = "gqa"
    input_max_length = INPUT_MAX_LENGTH

    def __init__(self, layout, split: str, tokenizer, prompt: str | None = None, fix_prompt_typo: bool = False,
                 **kwargs):
        if prompt is None:
            prompt = PROMPT_FIXED if fix_prompt_typo else PROMPT
        super().__init__(layout, split, tokenizer, prompt, **kwargs)

    def _load(self) -> list[dict]:
        records = []
        for source in self.split.split(","):
            folder = self.features_folder(self.layout.gqa_features(source))
            entries = self.read_split(self.layout.gqa_split(source), ("img_id", "sent", "question_id"),
                                      "GQA question file")
            records += [dict(entry, folder=folder) for entry in entries]
        return records

    def _images(self, records: list[dict]):
        return [(d["folder"], d["img_id"]) for d in records]

    def _fill(self, rows, records: list[dict], out: dict) -> None:
        labelled = "label" in records[0]
        if labelled:
            answers = [sample_answer(d["label"])[0] for d in records]
            out["target_ids"] = pad([self.answer_ids(answer) for answer in answers], IGNORE_INDEX)
        out.update(question_ids=[d["question_id"] for d in records], sents=[d["sent"] for d in records],
                   img_ids=[d["img_id"] for d in records])
        if labelled:
            out.update(answers=answers, all_answers=[list(d["label"]) for d in records],
                       labels=[d["label"] for d in records])
