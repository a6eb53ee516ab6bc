"""VQAv2 (Karpathy splits): "vqa: <question>" truncated to 20 tokens; the target is one answer drawn by soft score,
truncated to 10 tokens, and the loss is weighted by that answer's score (pipeline spec §2.1)."""

from __future__ import annotations

import torch

from .base import ImageTextDataset, sample_answer

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

    def __init__(self, layout, split: str, tokenizer, prompt: str = PROMPT, **kwargs):
        super().__init__(layout, split, tokenizer, prompt, **kwargs)

    def _load(self) -> list[dict]:
        self.folder = self.features_folder(self.layout.coco_features())
        records = []
        for source in self.split.split(","):
            records += self.read_split(self.layout.vqa_split(source), ("img_id", "sent", "question_id"),
                                       "VQA question file")
        return records

    def __getitem__(self, index: int) -> dict:
        datum = self.data[index]
        example = {
            "input_ids": self.encode(self.prompt + datum["sent"], INPUT_MAX_LENGTH),
            "vis_feats": self.image(self.folder, datum["img_id"]),
            "meta": {"question_ids": datum["question_id"], "sents": datum["sent"], "img_ids": datum["img_id"],
                     "is_topk_optimal": datum.get("is_topk_optimal")},
        }
        if "label" in datum:
            answer, score = sample_answer(datum["label"])
            example["target_ids"] = self.encode(answer, TARGET_MAX_LENGTH)
            example["score"] = score
            example["meta"].update(answers=answer, all_answers=list(datum["label"]), labels=datum["label"])
        return example

    def _collate_extra(self, batch: list[dict], out: dict) -> None:
        if "score" in batch[0]:
            out["scores"] = torch.tensor([ex["score"] for ex in batch], dtype=torch.float)
