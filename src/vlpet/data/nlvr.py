"""NLVR2: "nlvr: <statement>" (never truncated) over two images stacked to (2, 49, F); the target is "true" or
"false" (pipeline spec §2.3)."""

from __future__ import annotations

import torch

from .base import IGNORE_INDEX, ImageTextDataset, pad
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
    images_per_example = 2

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

    def _images(self, records: list[dict]):
        return [(self.folder, d[key]) for d in records for key in ("img0", "img1")]

    def _fill(self, rows, records: list[dict], out: dict) -> None:
        labelled = "label" in records[0]
        if labelled:
            labels = [int(d["label"]) for d in records]
            out["target_ids"] = pad([self.answer_ids(ANSWERS[label]) for label in labels], IGNORE_INDEX)
        uids = [d["uid"] for d in records]
        out.update(question_ids=uids, uids=list(uids), identifiers=[d["identifier"] for d in records],
                   sents=[d["sent"] for d in records], img_ids=[[d["img0"], d["img1"]] for d in records])
        if labelled:
            out["answers"] = [ANSWERS[label] for label in labels]
            out["labels"] = torch.tensor(labels, dtype=torch.long)
