"""What ``prepare`` writes is what the loaders read: the visible sample prepared, plus random feature files for
every image it names, builds the four datasets and their batches; ``prepare check`` passes on the same tree."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from vlpet.__main__ import main
from vlpet.data import CaptionDataset, DataLayout, GQADataset, NLVRDataset, VQADataset, build_tokenizer

SAMPLE = Path(__file__).parent / "fixtures" / "prepare-visible"
F = 2048


def image_ids(root):
    """{feature folder: img_ids} named by the prepared annotation files."""
    load = lambda relative: json.loads((root / relative).read_text())  # noqa: E731
    ids = {"COCO": {r["img_id"] for s in ("train", "val", "test") for r in load(f"vqa/karpathy_{s}.json")},
           "VG": {r["img_id"] for s in ("train", "valid") for r in load(f"GQA/{s}.json")},
           "GQA": {r["img_id"] for s in ("testdev", "submit") for r in load(f"GQA/{s}.json")},
           "nlvr": {r[k] for s in ("train", "valid", "test") for r in load(f"nlvr/{s}.json") for k in ("img0", "img1")}}
    ids["COCO"] |= {i["filename"].split(".")[0] for i in load("COCO/dataset_coco.json")["images"]}
    return ids


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    assert main(["prepare", "all", "--raw", str(SAMPLE / "raw"), "--out", str(root)]) == 0
    rng = np.random.default_rng(0)
    for folder, ids in image_ids(root).items():
        out = root / folder / "clip_features" / "data_clip_RN101_att"
        out.mkdir(parents=True)
        for img_id in ids:
            with h5py.File(out / f"{img_id}.h5", "w") as f:
                f.create_dataset(f"{img_id}/features", data=rng.random((49, F), dtype=np.float32).astype(np.float16))
    return root


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("bart", ["vqa: gpa: nlvr: caption: true false yes no"])  # other words are <unk>


@pytest.mark.parametrize("dataset, split", [
    (VQADataset, "karpathy_train"), (VQADataset, "karpathy_test"), (GQADataset, "train,valid"),
    (GQADataset, "testdev"), (GQADataset, "submit"), (NLVRDataset, "valid"), (CaptionDataset, "karpathy_train"),
    (CaptionDataset, "karpathy_test"),
])
def test_loaders_build_batches_from_a_prepared_tree(tree, tokenizer, dataset, split):
    data = dataset(DataLayout(tree), split, tokenizer)
    assert len(data) > 0
    batch = data.batch(range(len(data)))
    assert batch["vis_feats"].shape[-2:] == (49, F) and batch["input_ids"].shape[0] == len(data)
    if split == "karpathy_test" and dataset is VQADataset:
        assert all(isinstance(flag, bool) for flag in batch["is_topk_optimal"])


def test_check_passes_on_the_prepared_tree(tree, capsys):
    assert main(["prepare", "check", "--root", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "vocabulary 3,129 ✓" in out and "vocabulary 1,842 ✓" in out and "0 missing" in out
