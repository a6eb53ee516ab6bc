"""COCO Caption (Karpathy split): the input is just the prompt "caption: " (at most 40 tokens); training has one
example per (image, reference), with the reference truncated to 40 tokens as target; val/test have one example per
image with all references (pipeline spec §2.4)."""

from __future__ import annotations

from pathlib import Path

from .base import IGNORE_INDEX, EncodedTexts, ImageTextDataset, check_entries
from .layout import DataError, field, read_json

PROMPT = "caption: "
INPUT_MAX_LENGTH = 40
TARGET_MAX_LENGTH = 40
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


class CaptionDataset(ImageTextDataset):
    """Captions of ``COCO/dataset_coco.json``; ``split`` is ``karpathy_train`` (train + restval), ``karpathy_val`` or
    ``karpathy_test``.

    Batch lists: ``img_ids``, ``targets`` (all stripped references of the image) and, in training, ``sents`` (the
    reference used as target). Val/test batches have no ``target_ids``.
    """

    task = "caption"
    input_max_length = INPUT_MAX_LENGTH

    def __init__(self, layout, split: str, tokenizer, prompt: str = PROMPT, target_max_length: int = TARGET_MAX_LENGTH,
                 **kwargs):
        self.target_max_length = target_max_length
        super().__init__(layout, split, tokenizer, prompt, **kwargs)

    def _load(self) -> list[dict]:
        self.folder = self.features_folder(self.layout.coco_features())
        path = self.layout.coco_karpathy()
        self.sources = [path]
        images = check_entries(field(read_json(path, "COCO Karpathy caption file"), "images", path, 0),
                               ("split", "filename", "sentences"), path)
        wanted = self.split.split("_")[-1]
        if wanted not in KARPATHY_SPLITS.values():
            raise DataError(f"unknown caption split '{self.split}' (use karpathy_train, karpathy_val or "
                            f"karpathy_test) for {path}", path)
        records = []
        for index, image in enumerate(images):
            if KARPATHY_SPLITS.get(image["split"]) == wanted:
                records += self._image_records(image, path, index)
        return records

    def _image_records(self, image: dict, path: Path, index: int) -> list[dict]:
        refs = [field(s, "raw", path, index).strip() for s in image["sentences"]]
        record = {"img_id": image["filename"].split(".")[0], "targets": refs}
        if image["split"] in ("train", "restval"):
            return [dict(record, sent=ref) for ref in refs]
        return [record]

    def input_text(self, datum: dict) -> str:
        return self.prompt

    def _encode_records(self, records: list[dict]) -> None:
        sents = [d.get("sent", "") for d in records]
        self.encoded_targets = EncodedTexts(self.tokenizer, sents, self.target_max_length)

    def _fill(self, rows, records: list[dict], out: dict) -> None:
        labelled = "sent" in records[0]
        if labelled:
            out["target_ids"] = self.encoded_targets.pad(rows, IGNORE_INDEX)
        out.update(img_ids=[d["img_id"] for d in records], targets=[d["targets"] for d in records])
        if labelled:
            out["sents"] = [d["sent"] for d in records]
