"""GQA: "gpa: <question>" (the official prompt, typo included) truncated to 20 tokens; the target is the answer
(sampled by score; GQA labels are {answer: 1.0}), not truncated, and the loss is not weighted (pipeline spec §2.2)."""

from __future__ import annotations

from .base import ImageTextDataset, sample_answer

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

    def __getitem__(self, index: int) -> dict:
        datum = self.data[index]
        example = {
            "input_ids": self.encode(self.prompt + datum["sent"], INPUT_MAX_LENGTH),
            "vis_feats": self.image(datum["folder"], datum["img_id"]),
            "meta": {"question_ids": datum["question_id"], "sents": datum["sent"], "img_ids": datum["img_id"]},
        }
        if "label" in datum:
            answer, _ = sample_answer(datum["label"])
            example["target_ids"] = self.encode(answer)
            example["meta"].update(answers=answer, all_answers=list(datum["label"]), labels=datum["label"])
        return example
