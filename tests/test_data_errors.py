"""Every user-facing data error is a DataError naming the path (and the image id for features) and the README."""

import json

import h5py
import numpy as np
import pytest

from vlpet.data import layout as layout_module
from vlpet.data.caption import CaptionDataset
from vlpet.data.gqa import GQADataset
from vlpet.data.layout import DataError, DataLayout, resolve_root
from vlpet.data.nlvr import NLVRDataset
from vlpet.synth.image import write_synthetic
from vlpet.data.tokenizer import build_tokenizer
from vlpet.data.vqa import VQADataset

README = "README.md#data"
FEATS = "clip_features/data_clip_RN101_att"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "datasets"
    write_synthetic(root, n_train=2, n_val=2, n_test=2, feat_dim=8)
    return root


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("bart", ["vqa", ":"])


def raises(path, func, *args, **kwargs):
    """Run ``func`` and return its DataError message, which must name ``path`` and the README section."""
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert str(path) in message and README in message
    return message


def test_explicit_root_missing(tmp_path):
    raises(tmp_path / "nowhere", resolve_root, tmp_path / "nowhere")


def test_no_root_found_names_the_candidates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(layout_module, "_checkout_root", lambda: tmp_path / "repo")
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "README.md").write_text("only a readme")  # not a data root
    raises(tmp_path / "datasets", resolve_root)


def test_root_default_then_parent_fallback(tmp_path, monkeypatch):
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(layout_module, "_checkout_root", lambda: work)
    (tmp_path / "datasets" / "vqa").mkdir(parents=True)
    assert resolve_root() == tmp_path / "datasets"  # ../datasets, where the official code looks
    (work / "datasets" / "GQA").mkdir(parents=True)
    assert resolve_root() == work / "datasets"  # ./datasets wins


@pytest.mark.parametrize("cls, split, relpath", [
    (VQADataset, "karpathy_train", "vqa/karpathy_train.json"),
    (GQADataset, "train,valid", "GQA/valid.json"),
    (NLVRDataset, "test", "nlvr/test.json"),
    (CaptionDataset, "karpathy_val", "COCO/dataset_coco.json"),
])
def test_missing_json(tree, tok, cls, split, relpath):
    (tree / relpath).unlink()
    assert "missing" in raises(tree / relpath, cls, DataLayout(tree), split, tok)


@pytest.mark.parametrize("cls, split, folder", [
    (VQADataset, "karpathy_val", "COCO"),
    (GQADataset, "train", "VG"),
    (GQADataset, "testdev", "GQA"),
    (NLVRDataset, "valid", "nlvr"),
])
def test_missing_feature_folder(tree, tok, cls, split, folder):
    path = tree / folder / FEATS
    for file in path.iterdir():
        file.unlink()
    path.rmdir()
    raises(path, cls, DataLayout(tree), split, tok)


def test_malformed_json(tree, tok):
    path = tree / "nlvr" / "train.json"
    path.write_text("[{not json")
    raises(path, NLVRDataset, DataLayout(tree), "train", tok)


def test_missing_field(tree, tok):
    path = tree / "vqa" / "karpathy_val.json"
    entries = json.loads(path.read_text())
    del entries[1]["sent"]
    path.write_text(json.dumps(entries))
    message = raises(path, VQADataset, DataLayout(tree), "karpathy_val", tok)
    assert "entry 1" in message and "'sent'" in message


def test_caption_file_without_images_key(tree, tok):
    path = tree / "COCO" / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco"}))
    assert "'images'" in raises(path, CaptionDataset, DataLayout(tree), "karpathy_train", tok)


def test_unknown_caption_split_and_bad_nlvr_label(tree, tok):
    raises(tree / "COCO" / "dataset_coco.json", CaptionDataset, DataLayout(tree), "karpathy_dev", tok)
    path = tree / "nlvr" / "valid.json"
    entries = json.loads(path.read_text())
    entries[0]["label"] = 2
    path.write_text(json.dumps(entries))
    raises(path, NLVRDataset, DataLayout(tree), "valid", tok)


def first_vqa(tree, tok):
    ds = VQADataset(DataLayout(tree), "karpathy_train", tok)
    img_id = ds.data[0]["img_id"]
    return ds, img_id, tree / "COCO" / FEATS / f"{img_id}.h5"


def test_missing_h5_names_file_and_image(tree, tok):
    ds, img_id, path = first_vqa(tree, tok)
    path.unlink()
    assert f"'{img_id}'" in raises(path, ds.__getitem__, 0)


def test_corrupt_h5_names_file_and_image(tree, tok):
    ds, img_id, path = first_vqa(tree, tok)
    path.write_bytes(b"this is not an hdf5 file")
    assert f"'{img_id}'" in raises(path, ds.__getitem__, 0)


def test_h5_without_the_features_dataset(tree, tok):
    ds, img_id, path = first_vqa(tree, tok)
    with h5py.File(path, "w") as f:
        f.create_dataset("other/features", data=np.zeros((49, 8), dtype=np.float16))
    message = raises(path, ds.__getitem__, 0)
    assert f"'{img_id}/features'" in message


def test_h5_with_a_wrong_shape(tree, tok):
    ds, img_id, path = first_vqa(tree, tok)
    with h5py.File(path, "w") as f:
        f.create_dataset(f"{img_id}/features", data=np.zeros((36, 8), dtype=np.float16))
    assert "(36, 8)" in raises(path, ds.__getitem__, 0)
