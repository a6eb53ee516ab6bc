"""The synthetic generator's rendered scenes, extracted end to end through ``python -m vlpet extract`` with a
random-weight RN101 saved as an OpenAI-format (``visual.*``) safetensors file (the full-size trunk, ~20 s on CPU)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import torch
from PIL import Image

from test_features_image import one_thread  # noqa: F401 (autouse fixture)
from vlpet.__main__ import main
from vlpet.synth.image import CELL, RGB, write_synthetic
from vlpet.features.image import GridExtractor, extract_images
from vlpet.features.resnet import ModifiedResNet


def test_every_scene_is_rendered_next_to_its_features(tmp_path):
    counts = write_synthetic(tmp_path / "datasets", n_train=4, n_val=2, n_test=2, feat_dim=16,
                             images=tmp_path / "images", image_format="jpg")
    for source, n in counts.items():
        rendered = sorted(p.stem for p in (tmp_path / "images" / source).glob("*.jpg"))
        features = sorted(p.stem for p in (tmp_path / "datasets" / source).glob("clip_features/*/*.h5"))
        assert rendered == features and len(rendered) == n
    karpathy = json.loads((tmp_path / "datasets" / "COCO" / "dataset_coco.json").read_text())["images"]
    entry = karpathy[0]
    image = np.asarray(Image.open(tmp_path / "images" / "COCO" / entry["filename"]))
    assert image.shape == (224, 224, 3)
    first = entry["sentences"][0]["raw"].split(" and ")[0].split()  # "a <colour> <shape>" of the first object
    slots = (8, 12, 24, 36, 40)
    centres = [image[(s // 7) * CELL + CELL // 2, (s % 7) * CELL + CELL // 2].astype(int) for s in slots]
    assert any(np.abs(c - RGB[first[1]]).max() < 40 for c in centres)


def test_rendered_images_extract_with_a_tiny_trunk(tmp_path):
    write_synthetic(tmp_path / "datasets", n_train=2, n_val=1, n_test=1, feat_dim=16, images=tmp_path / "images")
    extractor = GridExtractor(ModifiedResNet(layers=(1, 1, 1, 1), width=8).eval())
    summary = extract_images(tmp_path / "images", tmp_path / "features", extractor, workers=0, progress=False)
    n_h5 = len(list((tmp_path / "datasets").glob("*/clip_features/*/*.h5")))
    assert summary["written"] == summary["images"] == n_h5 and summary["unreadable"] == 0


def test_rendered_images_extract_end_to_end_with_random_rn101(tmp_path, capsys):
    from safetensors.torch import save_file

    write_synthetic(tmp_path / "datasets", n_train=1, n_val=1, n_test=1, feat_dim=16, images=tmp_path / "images")
    torch.manual_seed(0)
    save_file({f"visual.{k}": v.half() for k, v in ModifiedResNet().state_dict().items()},
              str(tmp_path / "RN101.safetensors"))
    out = tmp_path / "features"
    assert main(["extract", "--images", str(tmp_path / "images" / "COCO"), "--out", str(out), "--model", "RN101",
                 "--weights", str(tmp_path / "RN101.safetensors"), "--device", "cpu", "--batch-size", "2",
                 "--workers", "1", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["written"] == summary["images"] == 4 and summary["unreadable"] == 0
    assert summary["weights"] == {"file": str(tmp_path / "RN101.safetensors"), "convs_fp16_exact": True}
    for path in (tmp_path / "images" / "COCO").glob("*.png"):
        with h5py.File(out / f"{path.stem}.h5", "r") as f:
            features = f[path.stem]["features"]
            assert features.shape == (49, 2048) and features.dtype == np.float16
            assert np.isfinite(features[()]).all() and np.abs(features[()]).max() > 0
