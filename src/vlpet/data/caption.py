"""COCO Caption (Karpathy split): the input is just the prompt "caption: " (at most 40 tokens); training has one
example per (image, reference), with the reference truncated to 40 tokens as target; val/test have one example per
image with all references (pipeline spec §2.4)."""

from __future__ import annotations

from pathlib import Path

from .base import ImageTextDataset, check_entries
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

    def __getitem__(self, index: int) -> dict:
        datum = self.data[index]
        example = {
            "input_ids": self.encode(self.prompt, INPUT_MAX_LENGTH),
            "vis_feats": self.image(self.folder, datum["img_id"]),
            "meta": {"img_ids": datum["img_id"], "targets": datum["targets"]},
        }
        if "sent" in datum:
            example["target_ids"] = self.encode(datum["sent"], self.target_max_length)
            example["meta"]["sents"] = datum["sent"]
        return example
