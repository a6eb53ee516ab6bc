"""h5 feature reading: float16 on disk -> float32 (``read``), files opened once per process (worker), bounded handle cache."""

import os
import pickle
from collections import defaultdict

import h5py
import numpy as np
import pytest
from torch.utils.data import DataLoader

from vlpet.data.features import FeatureReader
from vlpet.data.layout import DataLayout
from vlpet.data.multitask import as_built
from vlpet.synth.image import write_synthetic
from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.vqa import VQADataset


def write(folder, img_id, values):
    with h5py.File(folder / f"{img_id}.h5", "w") as f:
        f.create_dataset(f"{img_id}/features", data=values)


@pytest.fixture
def files(tmp_path):
    values = (np.arange(49 * 4).reshape(49, 4) / 8).astype(np.float16)
    for k in range(3):
        write(tmp_path, f"img{k}", values + k)
    return tmp_path, values


def test_float16_to_float32(files):
    folder, values = files
    feats = FeatureReader().read(folder / "img1.h5", "img1")
    assert feats.dtype == np.float32 and feats.shape == (49, 4)
    np.testing.assert_array_equal(feats, values.astype(np.float32) + 1)


def test_each_file_opened_once(files):
    folder, _ = files
    reader = FeatureReader()
    for _ in range(5):
        for k in range(3):
            reader.read(folder / f"img{k}.h5", f"img{k}")
    assert reader.n_opened == 3


def test_cache_is_bounded(files):
    folder, _ = files
    reader = FeatureReader(max_open=2)
    for k in (0, 1, 2, 0):
        reader.read(folder / f"img{k}.h5", f"img{k}")
    assert reader.n_opened == 4 and len(reader._files) == 2
    reader.close()
    assert not reader._files


def test_pickling_and_forks_drop_handles(files):
    folder, _ = files
    reader = FeatureReader()
    reader.read(folder / "img0.h5", "img0")
    assert not pickle.loads(pickle.dumps(reader))._files
    reader._pid = -1  # as seen from a forked worker: the parent's handles are not reused
    reader.read(folder / "img0.h5", "img0")
    assert reader.n_opened == 2


class CountingVQA(VQADataset):
    """Reports, per batch, the worker's pid and how many files its reader has opened so far."""

    def batch(self, indices):
        out = super().batch(indices)
        out.update(pid=[os.getpid()] * len(indices), opened=[self.reader.n_opened] * len(indices))
        return out


def test_loader_workers_open_each_file_once(tmp_path):
    write_synthetic(tmp_path, n_train=4, n_val=1, n_test=1, feat_dim=8)
    ds = CountingVQA(DataLayout(tmp_path), "karpathy_train", build_tokenizer("bart", ["vqa", ":"]))
    ds.data = ds.data * 4  # every image is read many times by every worker
    seen, opened = defaultdict(set), defaultdict(int)
    for batch in DataLoader(ds, batch_size=3, num_workers=2, collate_fn=as_built):
        for pid, img_id, n in zip(batch["pid"], batch["img_ids"], batch["opened"]):
            seen[pid].add(img_id)
            opened[pid] = max(opened[pid], n)
    assert len(seen) == 2 and os.getpid() not in seen
    assert all(opened[pid] <= len(seen[pid]) for pid in seen)
    assert ds.reader.n_opened == 0  # the main process opened nothing
