"""Whole-batch loading (issue 19): the batches, their order and every value reaching the model are those of the
per-example path it replaced (kept below as the reference), on a multi-task synthetic run, h5 and packed layouts,
in the main process and in (persistent) workers, over two epochs and two validation passes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vlpet.data.base import IGNORE_INDEX, sample_answer
from vlpet.data.device import to_device
from vlpet.data.features import FeatureReader
from vlpet.data.layout import DataLayout, h5_path
from vlpet.data.multitask import MultitaskLoader, build_datasets, build_loaders, task_batch_sizes, train_sampler
from vlpet.synth.image import synth_words, write_synthetic
from vlpet.data.tokenizer import build_tokenizer
from vlpet.models.visual import visual_inputs
from vlpet.prepare.pack import feature_folders, pack_folder

B = 9  # per-task batches 9 / 15 / 3 / 7


def old_pad(sequences, value):
    out = torch.full((len(sequences), max(len(s) for s in sequences)), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


class PerExample(Dataset):
    """The per-example path before issue 19: every example tokenised and read (float32) on its own, then collated."""

    def __init__(self, ds):
        self.ds, self.task, self.tok = ds, ds.task, ds.tokenizer
        self.reader = FeatureReader()

    def __len__(self):
        return len(self.ds.data)

    def encode(self, text, max_length=None):
        if max_length is None:
            return self.tok.encode(text)
        return self.tok.encode(text, max_length=max_length, truncation=True)

    def image(self, folder, img_id):
        return self.reader.read(h5_path(folder, img_id), img_id)

    def __getitem__(self, index):
        d, prompt = self.ds.data[index], self.ds.prompt
        if self.task in ("vqa", "gqa"):
            folder = d["folder"] if self.task == "gqa" else self.ds.folder
            ex = {"input_ids": self.encode(prompt + d["sent"], 20), "vis_feats": self.image(folder, d["img_id"]),
                  "meta": {"question_ids": d["question_id"], "sents": d["sent"], "img_ids": d["img_id"]}}
            if self.task == "vqa":
                ex["meta"]["is_topk_optimal"] = d.get("is_topk_optimal")
            if "label" in d:
                answer, score = sample_answer(d["label"])
                ex["target_ids"] = self.encode(answer, 10 if self.task == "vqa" else None)
                ex["score"] = score
                ex["meta"].update(answers=answer, all_answers=list(d["label"]), labels=d["label"])
            return ex
        if self.task == "nlvr":
            images = [d["img0"], d["img1"]]
            ex = {"input_ids": self.encode(prompt + d["sent"]),
                  "vis_feats": np.stack([self.image(self.ds.folder, i) for i in images]),
                  "meta": {"question_ids": d["uid"], "uids": d["uid"], "identifiers": d["identifier"],
                           "sents": d["sent"], "img_ids": images}}
            if "label" in d:
                ex["label"] = int(d["label"])
                ex["target_ids"] = self.encode({1: "true", 0: "false"}[ex["label"]])
                ex["meta"]["answers"] = {1: "true", 0: "false"}[ex["label"]]
            return ex
        ex = {"input_ids": self.encode(prompt, 40), "vis_feats": self.image(self.ds.folder, d["img_id"]),
              "meta": {"img_ids": d["img_id"], "targets": d["targets"]}}
        if "sent" in d:
            ex["target_ids"] = self.encode(d["sent"], self.ds.target_max_length)
            ex["meta"]["sents"] = d["sent"]
        return ex

    def collate(self, batch):
        feats = torch.stack([torch.as_tensor(ex["vis_feats"]) for ex in batch])
        out = {"task": self.task, "input_ids": old_pad([ex["input_ids"] for ex in batch], self.tok.pad_token_id),
               "vis_feats": feats, "boxes": torch.zeros(*feats.shape[:-1], 4)}
        if "target_ids" in batch[0]:
            out["target_ids"] = old_pad([ex["target_ids"] for ex in batch], IGNORE_INDEX)
        for key in batch[0]["meta"]:
            out[key] = [ex["meta"].get(key) for ex in batch]
        if self.task == "vqa" and "score" in batch[0]:
            out["scores"] = torch.tensor([ex["score"] for ex in batch], dtype=torch.float)
        if self.task == "nlvr" and "label" in batch[0]:
            out["labels"] = torch.tensor([ex["label"] for ex in batch], dtype=torch.long)
        return out


def old_loaders(datasets, train, workers):
    sizes = task_batch_sizes(B)
    loaders = {}
    for task, ds in datasets.items():
        ref = PerExample(ds)
        loaders[task] = DataLoader(ref, batch_size=sizes[task], sampler=train_sampler(ref) if train else None,
                                   num_workers=workers, collate_fn=ref.collate, generator=torch.Generator())
        loaders[task].task = task
    return loaders


def run(train, val, seed=5):
    """Every batch of two epochs of ``train`` (a MultitaskLoader) and two passes of the ``val`` loaders."""
    np.random.seed(seed)
    batches = []
    for epoch in (0, 1):
        train.set_epoch(epoch)
        batches += list(train)
        for loader in val.values():
            batches += list(loader)
    return batches


def assert_same(old, new):
    assert list(new) == list(old)
    for key, value in old.items():
        if key == "vis_feats":
            assert new[key].dtype == torch.float16  # as stored; widened on the device
            widened = to_device(new, "cpu")[key]
            assert widened.dtype == value.dtype == torch.float32 and torch.equal(widened, value)
            for downsample in (True, False):  # the model's 49 -> 36 max-pool on the widened values
                a = visual_inputs(value, old["boxes"], 36, downsample)
                b = visual_inputs(widened, new["boxes"], 36, downsample)
                assert all(torch.equal(x, y) for x, y in zip(a, b))
        elif torch.is_tensor(value):
            assert new[key].dtype == value.dtype and torch.equal(new[key], value), key
        else:
            assert new[key] == value, key


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    h5 = tmp_path_factory.mktemp("h5")
    write_synthetic(h5, n_train=6, n_val=2, n_test=2, feat_dim=8)
    packed = tmp_path_factory.mktemp("packed")
    write_synthetic(packed, n_train=6, n_val=2, n_test=2, feat_dim=8, seed=3)
    for folder in feature_folders(packed):
        pack_folder(folder, show=False)
    return {"h5": h5, "packed": packed}


@pytest.mark.parametrize("layout", ["h5", "packed"])
@pytest.mark.parametrize("workers", [0, 2])
def test_whole_batches_equal_the_per_example_path(roots, layout, workers):
    tok = build_tokenizer("bart", synth_words())
    train = build_datasets(DataLayout(roots[layout]), tok, "train")
    val = build_datasets(DataLayout(roots[layout]), tok, "val")
    old = run(MultitaskLoader(old_loaders(train, True, workers), seed=7), old_loaders(val, False, workers))
    new = run(MultitaskLoader(build_loaders(train, B, True, workers), seed=7), build_loaders(val, B, False, workers))
    assert len(new) == len(old) > 20
    assert {b["task"] for b in new} == {"vqa", "gqa", "nlvr", "caption"}
    for a, b in zip(old, new):
        assert_same(a, b)
    if layout == "packed":
        assert all(ds.reader.n_opened == 0 for ds in train.values())  # no h5 file opened


def test_float32_features_stay_float32_and_mixed_sources_gather(tmp_path):
    values = (np.arange(49 * 4).reshape(49, 4) / 3).astype(np.float32)
    for k, dtype in enumerate((np.float32, np.float16)):
        with h5py.File(tmp_path / f"img{k}.h5", "w") as f:
            f.create_dataset(f"img{k}/features", data=(values + k).astype(dtype))
    reader = FeatureReader()
    both = reader.gather([(tmp_path, "img1"), (tmp_path, "img0")])
    assert both.dtype == torch.float32 and both.shape == (2, 49, 4)
    assert torch.equal(both[0], torch.from_numpy(reader.read(tmp_path / "img1.h5", "img1")))
    assert torch.equal(both[1], torch.from_numpy(values))
    assert reader.gather([(tmp_path, "img1")]).dtype == torch.float16


def test_texts_are_tokenised_once_per_run(roots, monkeypatch):
    tok = build_tokenizer("bart", synth_words())
    datasets = build_datasets(DataLayout(roots["packed"]), tok, "train")
    loader = MultitaskLoader(build_loaders(datasets, B, True))
    list(loader)  # the first epoch encodes each distinct answer once
    for method in ("__call__", "encode"):
        monkeypatch.setattr(type(tok), method, lambda *a, **k: pytest.fail("tokenised again"))
    loader.set_epoch(1)
    assert sum(len(b["input_ids"]) for b in loader) == sum(len(ds) for ds in datasets.values())
