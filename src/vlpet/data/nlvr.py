"""NLVR2: "nlvr: <statement>" (never truncated) over two images stacked to (2, 49, F); the target is "true" or
"false" (pipeline spec §2.3)."""

from __future__ import annotations

import numpy as np
import torch

from .base import ImageTextDataset
from .layout import DataError

PROMPT = "nlvr: "
ANSWERS = {1: "true", 0: "false"}


class NLVRDataset(ImageTextDataset):
    """Statements of ``nlvr/<split>.json`` (train, valid = dev, test = test-P).

    Batch extras: ``vis_feats`` (B, 2, 49, F), ``boxes`` (B, 2, 49, 4), ``labels`` (B,) long when labelled, and the
    lists ``question_ids`` (= ``uids``), ``uids``, ``identifiers``, ``sents``, ``img_ids`` ([img0, img1]) and
    ``answers`` ("true"/"false").
    """

    task = "nlvr"

    def __init__(self, layout, split: str, tokenizer, prompt: str = PROMPT, **kwargs):
        super().__init__(layout, split, tokenizer, prompt, **kwargs)

    def _load(self) -> list[dict]:
        self.folder = self.features_folder(self.layout.nlvr_features())
        records = []
        for source in self.split.split(","):
            path = self.layout.nlvr_split(source)
            entries = self.read_split(path, ("identifier", "img0", "img1", "sent", "uid"), "NLVR2 statement file")
            bad = [i for i, entry in enumerate(entries) if entry.get("label", 0) not in ANSWERS]
            if bad:
                raise DataError(f"{path}: entry {bad[0]} has a label other than 0 or 1", path)
            records += entries
        return records

    def __getitem__(self, index: int) -> dict:
        datum = self.data[index]
        images = [datum["img0"], datum["img1"]]
        example = {
            "input_ids": self.encode(self.prompt + datum["sent"]),
            "vis_feats": np.stack([self.image(self.folder, img_id) for img_id in images]),
            "meta": {"question_ids": datum["uid"], "uids": datum["uid"], "identifiers": datum["identifier"],
                     "sents": datum["sent"], "img_ids": images},
        }
        if "label" in datum:
            example["label"] = int(datum["label"])
            example["target_ids"] = self.encode(ANSWERS[example["label"]])
            example["meta"]["answers"] = ANSWERS[example["label"]]
        return example

    def _collate_extra(self, batch: list[dict], out: dict) -> None:
        if "label" in batch[0]:
            out["labels"] = torch.tensor([ex["label"] for ex in batch], dtype=torch.long)
