"""Packed features (issue 12): one memory-mapped array per feature folder, bit-identical to the per-image h5 files;
the loaders use it when present and fall back to the h5 files for ids it does not list."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from vlpet.data.features import FeatureReader
from vlpet.data.layout import DataError, DataLayout
from vlpet.data.multitask import build_datasets
from vlpet.synth.image import synth_words, write_synthetic
from vlpet.data.tokenizer import build_tokenizer
from vlpet.prepare.pack import feature_folders, main, pack_folder


@pytest.fixture
def root(tmp_path):
    write_synthetic(tmp_path, n_train=4, n_val=2, n_test=2, seed=1, feat_dim=8)
    return tmp_path


def h5_features(path):
    with h5py.File(path, "r") as f:
        return f[f"{path.stem}/features"][...]


def test_packed_rows_are_the_h5_bits_and_loaders_use_them(root):
    tokenizer = build_tokenizer("bart", synth_words())
    before = {task: [ds[i]["vis_feats"] for i in range(len(ds))]
              for task, ds in build_datasets(DataLayout(root), tokenizer, "train").items()}
    assert main(["--root", str(root), "--no_progress"]) == 0
    folders = feature_folders(root)
    assert {f.parts[-3] for f in folders} == {"COCO", "VG", "GQA", "nlvr"}
    for folder in folders:
        packed = np.load(folder / "packed" / "features.npy", mmap_mode="r")
        ids = json.loads((folder / "packed" / "ids.json").read_text())
        files = sorted(folder.glob("*.h5"))
        assert ids == [f.stem for f in files] and packed.dtype == np.float16 and packed.shape == (len(ids), 49, 8)
        for row, path in enumerate(files):
            assert np.array_equal(packed[row], h5_features(path))
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left
    datasets = build_datasets(DataLayout(root), tokenizer, "train")
    for task, ds in datasets.items():
        after = [ds[i]["vis_feats"] for i in range(len(ds))]
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(after, before[task])), task
        assert ds.reader.n_opened == 0  # no h5 file was opened


def test_ids_outside_the_index_fall_back_to_h5_and_repack_replaces(root):
    folder = feature_folders(root)[0]
    pack_folder(folder, show=False)
    extra = (np.arange(49 * 8).reshape(49, 8) / 7).astype(np.float16)
    with h5py.File(folder / "new_image.h5", "w") as f:
        f.create_dataset("new_image/features", data=extra)
    reader = FeatureReader()
    assert np.array_equal(reader.read(folder / "new_image.h5", "new_image"), extra.astype(np.float32))
    assert reader.n_opened == 1
    n, shape = pack_folder(folder, show=False)
    assert "new_image" in json.loads((folder / "packed" / "ids.json").read_text()) and shape[0] == n
    reader = FeatureReader()
    assert np.array_equal(reader.read(folder / "new_image.h5", "new_image"), extra.astype(np.float32))
    assert reader.n_opened == 0


def test_mismatched_index_and_bad_input_are_clear_errors(root, tmp_path, capsys):
    folder = feature_folders(root)[0]
    pack_folder(folder, show=False)
    (folder / "packed" / "ids.json").write_text(json.dumps(["a"]))
    first = sorted(folder.glob("*.h5"))[0]
    with pytest.raises(DataError, match="re-run"):
        FeatureReader().read(first, first.stem)
    assert main(["--root", str(tmp_path / "missing")]) == 2
    assert "datasets root not found" in capsys.readouterr().err


def test_cli_runs_as_a_module(root):
    proc = subprocess.run([sys.executable, "-m", "vlpet.prepare.pack", "--root", str(root), "--no_progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("packed ") == 4
