"""What the four image-text datasets share: loading their JSON, encoding text, reading images, collating batches.

An example (``__getitem__``) is a dict with ``input_ids`` (list of ids), optionally ``target_ids``, ``vis_feats``
(numpy float32, (49, F) or (2, 49, F)) and ``meta`` (per-example values of the batch's metadata lists). ``collate``
turns a list of examples into the model's batch dict (see ``ImageTextDataset.collate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .features import FeatureReader
from .layout import DataError, DataLayout, field, h5_path, read_json, require

IGNORE_INDEX = -100


def sample_answer(label: dict[str, float]) -> tuple[str, float]:
    """Draw one answer with probability proportional to its soft score; ('', 0.0) for an empty label.

    Uses numpy's global generator (``np.random.multinomial``) as the official loaders do (pipeline spec §2.1).
    """
    answers, scores = list(label), list(label.values())
    total = sum(scores)
    if total == 0:
        return "", 0.0
    choice = int(np.random.multinomial(1, [s / total for s in scores]).argmax())
    return answers[choice], float(scores[choice])


def check_entries(entries: Any, keys: Sequence[str], path: Path) -> list[dict]:
    """Ensure ``entries`` is a list of dicts that all hold ``keys``; else a DataError naming ``path``."""
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of examples", path)
    for index, entry in enumerate(entries):
        for key in keys:
            value = field(entry, key, path, index)
            if key in ("img_id", "img0", "img1") and (not isinstance(value, str) or not value or "/" in value
                                                      or "\\" in value or value.startswith("..")):
                raise DataError(f"{path}: entry {index} has the image id {value!r} in '{key}', which is no plain "
                                "file name (it contains '/', '\\' or '..', or is empty); refused", path)
    return entries


def collate_examples(batch: list[dict], task: str, pad_id: int) -> dict:
    """The model's batch dict (image and video alike): padded ``input_ids``, ``target_ids`` (-100 at padding) when
    the examples have targets, stacked float32 ``vis_feats``, zero ``boxes``, ``task``, one list per metadata key."""
    vis_feats = torch.stack([torch.as_tensor(ex["vis_feats"]) for ex in batch])
    out = {"task": task, "input_ids": pad([ex["input_ids"] for ex in batch], pad_id), "vis_feats": vis_feats,
           "boxes": torch.zeros(*vis_feats.shape[:-1], 4)}
    if "target_ids" in batch[0]:
        out["target_ids"] = pad([ex["target_ids"] for ex in batch], IGNORE_INDEX)
    for key in batch[0]["meta"]:
        out[key] = [ex["meta"].get(key) for ex in batch]
    return out


class ImageTextDataset(Dataset):
    """Base of the VQA, GQA, NLVR2 and caption datasets.

    Subclasses set ``task``, implement ``_load`` (returns the example records) and ``__getitem__``, and may extend
    ``_collate_extra`` for task-specific tensors.
    """

    task = ""

    def __init__(self, layout: DataLayout, split: str, tokenizer, prompt: str, limit: int | None = None,
                 max_open_files: int = 512):
        self.layout = layout
        self.split = split
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.reader = FeatureReader(max_open=max_open_files)
        records = self._load()
        self.data = records if limit is None else records[:limit]

    def _load(self) -> list[dict]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.data)

    def read_split(self, path: Path, keys: Sequence[str], what: str) -> list[dict]:
        """Load and check one JSON list of examples (``sources`` records the files read)."""
        self.sources = [*getattr(self, "sources", []), path]
        return check_entries(read_json(path, what), keys, path)

    def features_folder(self, folder: Path) -> Path:
        """``folder`` if it exists, else a DataError naming it."""
        return require(folder, f"{self.task} image-feature folder")

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Token ids with the tokenizer's specials; truncated from the right (keeping ``</s>``) to ``max_length``."""
        if max_length is None:
            return self.tokenizer.encode(text)
        return self.tokenizer.encode(text, max_length=max_length, truncation=True)

    def image(self, folder: Path, img_id: str) -> np.ndarray:
        """float32 (49, F) features of one image."""
        return self.reader.read(h5_path(folder, img_id), img_id)

    def collate(self, batch: list[dict]) -> dict:
        """Batch dict: padded ``input_ids``, ``target_ids`` (-100 at padding), ``vis_feats``, zero ``boxes``,
        ``task`` and one list per metadata key."""
        out = collate_examples(batch, self.task, self.tokenizer.pad_token_id)
        self._collate_extra(batch, out)
        return out

    def _collate_extra(self, batch: list[dict], out: dict) -> None:
        """Hook for task-specific tensors (VQA scores, NLVR2 labels)."""


def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    """(B, max_len) long tensor, right-padded with ``value``."""
    out = torch.full((len(sequences), max(len(s) for s in sequences)), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out
