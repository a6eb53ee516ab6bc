"""What the four image-text datasets share: loading their JSON, encoding text, reading images, building batches.

A dataset builds whole batches: ``batch(indices)`` (also ``__getitems__``, so that a DataLoader or one of its
workers builds a batch in one call) returns the model's batch dict (see ``ImageTextDataset.batch``); ``ds[i]`` is
the batch of example ``i`` alone. The inputs are tokenised once, when the records are set (each distinct text
once), and answers once per distinct answer; the images of a batch are read together (``FeatureReader.gather``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .features import FeatureReader
from .layout import DataError, DataLayout, field, read_json, require

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
    """The model's batch dict from per-example dicts (the video datasets): padded ``input_ids``, ``target_ids``
    (-100 at padding) when the examples have targets, stacked ``vis_feats``, zero ``boxes``, ``task``, one list per
    metadata key."""
    vis_feats = torch.stack([torch.as_tensor(ex["vis_feats"]) for ex in batch])
    out = {"task": task, "input_ids": pad([ex["input_ids"] for ex in batch], pad_id), "vis_feats": vis_feats,
           "boxes": torch.zeros(*vis_feats.shape[:-1], 4)}
    if "target_ids" in batch[0]:
        out["target_ids"] = pad([ex["target_ids"] for ex in batch], IGNORE_INDEX)
    for key in batch[0]["meta"]:
        out[key] = [ex["meta"].get(key) for ex in batch]
    return out


ENCODE_CHUNK = 65536  # texts per tokenizer call when encoding a split


def encode_texts(tokenizer, texts: list[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids of each text, exactly ``tokenizer.encode(text[, max_length=..., truncation=True])``, in batched
    tokenizer calls."""
    kwargs = {} if max_length is None else {"max_length": max_length, "truncation": True}
    ids: list[list[int]] = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        ids += tokenizer(texts[start:start + ENCODE_CHUNK], **kwargs)["input_ids"]
    return ids


class EncodedTexts:
    """The token ids of one text per example, each distinct text encoded once, held as one flat array.

    ``pad(rows, value)`` is the (len(rows), longest) long tensor of those examples' ids, right-padded."""

    def __init__(self, tokenizer, texts: Sequence[str], max_length: int | None = None):
        distinct: dict[str, int] = {}
        self.which = np.fromiter((distinct.setdefault(text, len(distinct)) for text in texts), np.int64, len(texts))
        seqs = encode_texts(tokenizer, list(distinct), max_length)
        lengths = np.fromiter(map(len, seqs), np.int64, len(seqs))
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.flat = np.fromiter((i for seq in seqs for i in seq), np.int64, int(self.offsets[-1]))

    def pad(self, rows: np.ndarray, value: int) -> torch.Tensor:
        which = self.which[rows]
        starts, lengths = self.offsets[which], self.offsets[which + 1] - self.offsets[which]
        width = int(lengths.max()) if len(lengths) else 0
        out = np.full((len(rows), width), value, dtype=np.int64)
        within = np.arange(width)
        mask = within < lengths[:, None]
        out[mask] = self.flat[(starts[:, None] + within)[mask]]
        return torch.from_numpy(out)


def seed_worker(base_seed: int) -> None:
    """Seed this DataLoader worker's generators from ``base_seed`` as torch does when it starts a worker (python
    and torch ``base_seed + id``, numpy from both): a persistent worker starts each later pass as a fresh one."""
    from torch.utils.data._utils.worker import _generate_state

    worker = get_worker_info()
    random.seed(base_seed + worker.id)
    torch.manual_seed(base_seed + worker.id)
    np.random.seed(_generate_state(base_seed, worker.id))


class ImageTextDataset(Dataset):
    """Base of the VQA, GQA, NLVR2 and caption datasets.

    Subclasses set ``task``, ``input_max_length`` (and ``images_per_example``), implement ``_load`` (returns the
    example records) and ``_fill`` (targets, metadata lists and task tensors of a batch), and may override
    ``input_text``, ``_images`` and ``_encode_records``.
    """

    task = ""
    input_max_length: int | None = None
    images_per_example = 1

    def __init__(self, layout: DataLayout, split: str, tokenizer, prompt: str, limit: int | None = None,
                 max_open_files: int = 512):
        self.layout = layout
        self.split = split
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.reader = FeatureReader(max_open=max_open_files)
        self.pin_memory = False  # set by the loader on CUDA: batch features are allocated pinned
        self._answers: dict[tuple[str, int | None], list[int]] = {}
        records = self._load()
        self.data = records if limit is None else records[:limit]

    @property
    def data(self) -> list[dict]:
        """The example records; setting them encodes their texts (once, here, not per batch)."""
        return self._data

    @data.setter
    def data(self, records: list[dict]) -> None:
        self._data = records
        self.inputs = EncodedTexts(self.tokenizer, [self.input_text(d) for d in records], self.input_max_length)
        self._encode_records(records)

    def input_text(self, datum: dict) -> str:
        return self.prompt + datum["sent"]

    def _encode_records(self, records: list[dict]) -> None:
        """Hook: encode per-record targets (captions)."""

    def _load(self) -> list[dict]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._data)

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

    def answer_ids(self, answer: str, max_length: int | None = None) -> list[int]:
        """``encode(answer, max_length)``, computed once per distinct answer."""
        key = (answer, max_length)
        if key not in self._answers:
            self._answers[key] = self.encode(answer, max_length)
        return self._answers[key]

    def _images(self, records: list[dict]) -> list[tuple[Path, str]]:
        """(folder, img_id) of each image of the batch, in order."""
        return [(self.folder, d["img_id"]) for d in records]

    def __getitem__(self, index: int) -> dict:
        """The batch of example ``index`` alone."""
        return self.batch([index])

    def __getitems__(self, indices: Sequence[int]) -> dict:
        """The batch of ``indices`` (the DataLoader's fetch of a whole batch). The first batch of each worker in a
        later pass of persistent workers carries that pass's ``worker_seed`` (see ``multitask.WorkerSeeds``)."""
        if getattr(indices, "worker_seed", None) is not None:
            seed_worker(indices.worker_seed)
        return self.batch(indices)

    def batch(self, indices: Sequence[int]) -> dict:
        """The model's batch dict of the examples ``indices``, in that order: ``task``, ``input_ids`` (B, L) padded,
        ``vis_feats`` (B, 49, F), or (B, 2, 49, F) for NLVR2, float16 as stored (float32 when stored so; see
        ``device.to_device``), zero float32 ``boxes``, ``target_ids`` (-100 at padding) for labelled splits, one
        list per metadata key and the task's tensors. Answers are drawn example by example, in order, from numpy's
        global generator, as the official per-example loaders draw them."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        records = [self._data[i] for i in rows.tolist()]
        out: dict[str, Any] = {"task": self.task, "input_ids": self.inputs.pad(rows, self.tokenizer.pad_token_id)}
        pin = self.pin_memory and torch.cuda.is_available()
        feats = self.reader.gather(self._images(records), pin_memory=pin)
        if self.images_per_example > 1:
            feats = feats.view(len(records), self.images_per_example, *feats.shape[1:])
        out["vis_feats"] = feats
        out["boxes"] = torch.from_numpy(np.zeros((*feats.shape[:-1], 4), np.float32))  # one thread, no pool
        self._fill(rows, records, out)
        return out

    def _fill(self, rows: np.ndarray, records: list[dict], out: dict) -> None:
        """Add ``target_ids``, the metadata lists and the task's tensors to ``out``."""
        raise NotImplementedError


def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    """(B, max_len) long tensor, right-padded with ``value``."""
    out = np.full((len(sequences), max(len(s) for s in sequences)), value, dtype=np.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return torch.from_numpy(out)
