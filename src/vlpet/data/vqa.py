"""VQAv2 (Karpathy splits): "vqa: <question>" truncated to 20 tokens; the target is one answer drawn by soft score,
truncated to 10 tokens, and the loss is weighted by that answer's score (pipeline spec §2.1)."""

from __future__ import annotations

import torch

from .base import IGNORE_INDEX, ImageTextDataset, pad, sample_answer

PROMPT = "vqa: "
INPUT_MAX_LENGTH = 20
TARGET_MAX_LENGTH = 10


class VQADataset(ImageTextDataset):
    """Questions of ``vqa/<split>.json`` (comma-separated splits are concatenated) on COCO images.

    Batch extras: ``scores`` (B,) float (the sampled answers' soft scores, 0 for an empty label) and the lists
    ``question_ids``, ``sents``, ``img_ids``, ``answers`` (sampled), ``all_answers`` (the label's answers),
    ``labels`` ({answer: score}) and ``is_topk_optimal`` (None where the file has no such field).
    Unlabelled splits (e.g. ``test_4``) give no ``target_ids`` and no ``scores``.
    """

    task = "vqa"
    input_max_length = INPUT_MAX_LENGTH

    def __init__(self, layout, split: str, tokenizer, prompt: str = PROMPT, **kwargs):
        super().__init__(layout, split, tokenizer, prompt, **kwargs)

    def _load(self) -> list[dict]:
        self.folder = self.features_folder(self.layout.coco_features())
        records = []
        for source in self.split.split(","):
            records += self.read_split(self.layout.vqa_split(source), ("img_id", "sent", "question_id"),
                                       "VQA question file")
        return records

    def _fill(self, rows, records: list[dict], out: dict) -> None:
        labelled = "label" in records[0]
        if labelled:
            drawn = [sample_answer(d["label"]) for d in records]
            out["target_ids"] = pad([self.answer_ids(answer, TARGET_MAX_LENGTH) for answer, _ in drawn], IGNORE_INDEX)
        out.update(question_ids=[d["question_id"] for d in records], sents=[d["sent"] for d in records],
                   img_ids=[d["img_id"] for d in records],
                   is_topk_optimal=[d.get("is_topk_optimal") for d in records])
        if labelled:
            out.update(answers=[answer for answer, _ in drawn], all_answers=[list(d["label"]) for d in records],
                       labels=[d["label"] for d in records])
            out["scores"] = torch.tensor([score for _, score in drawn], dtype=torch.float)
