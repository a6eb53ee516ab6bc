"""The synthetic generator: the exact tree of pipeline spec §1, loadable by every dataset, and labels that are a
function of the features (decoded here from the h5 files alone)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from vlpet.data.layout import DataLayout
from vlpet.data.multitask import SPLITS, build_datasets
from vlpet.synth.image import COLORS, SHAPES, SLOTS, STATEMENTS, Scene, World, synth_words, write_synthetic
from vlpet.synth.__main__ import main
from vlpet.data.tokenizer import build_tokenizer

SEED, F = 3, 16
JSON_FILES = {
    "COCO/dataset_coco.json",
    "vqa/karpathy_train.json", "vqa/karpathy_val.json", "vqa/karpathy_test.json",
    "vqa/v2_mscoco_train2014_annotations.json", "vqa/v2_mscoco_val2014_annotations.json",
    "vqa/trainval_ans2label.json", "vqa/trainval_label2ans.json",
    "GQA/train.json", "GQA/valid.json", "GQA/testdev.json", "GQA/submit.json",
    "GQA/trainval_ans2label.json", "GQA/trainval_label2ans.json",
    "nlvr/train.json", "nlvr/valid.json", "nlvr/test.json",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_synthetic(root, n_train=8, n_val=4, n_test=4, seed=SEED, feat_dim=F)
    return root


def load(root, relpath):
    return json.loads((root / relpath).read_text())


def test_exact_tree(root):
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert {f for f in files if f.endswith(".json")} == JSON_FILES
    h5 = {f for f in files if f.endswith(".h5")}
    assert h5 == files - JSON_FILES
    folders = {str(Path(f).parent) for f in h5}
    assert folders == {f"{name}/clip_features/data_clip_RN101_att" for name in ("COCO", "VG", "GQA", "nlvr")}
    coco = load(root, "COCO/dataset_coco.json")["images"]
    assert {image["split"] for image in coco} == {"train", "restval", "val", "test"}
    assert all((root / "COCO/clip_features/data_clip_RN101_att" / f"{i['filename'][:-4]}.h5").is_file() for i in coco)


def test_h5_format(root):
    path = next((root / "nlvr/clip_features/data_clip_RN101_att").glob("*.h5"))
    with h5py.File(path, "r") as f:
        assert list(f) == [path.stem] and list(f[path.stem]) == ["features"]
        feats = f[f"{path.stem}/features"]
        assert feats.shape == (49, F) and feats.dtype == np.float16


def test_json_formats(root):
    vqa = load(root, "vqa/karpathy_val.json")[0]
    assert {"img_id", "sent", "question_id", "label", "answer_type", "question_type", "is_topk_optimal"} <= set(vqa)
    annotations = load(root, "vqa/v2_mscoco_val2014_annotations.json")["annotations"]
    assert len(annotations[0]["answers"]) == 10
    assert len(load(root, "vqa/trainval_ans2label.json")) == len(load(root, "vqa/trainval_label2ans.json"))
    assert isinstance(load(root, "GQA/testdev.json")[0]["question_id"], str)
    assert "label" not in load(root, "GQA/submit.json")[0]
    nlvr = load(root, "nlvr/valid.json")[0]
    assert set(nlvr) == {"identifier", "img0", "img1", "label", "sent", "uid"}


@pytest.mark.parametrize("style", ["bart", "t5"])
def test_every_split_loads(root, style):
    tok = build_tokenizer(style, synth_words())
    for phase in SPLITS:
        for task, ds in build_datasets(DataLayout(root), tok, phase).items():
            batch = ds.batch(range(len(ds)))
            assert batch["vis_feats"].shape[-2:] == (49, F), task
            assert tok.unk_token_id not in batch["input_ids"], task  # the synthetic words are all in the vocab


def decode(root, folder, img_id, world):
    """Objects (colour, shape, slot) read back from an h5 file with the concept patterns."""
    with h5py.File(root / folder / "clip_features/data_clip_RN101_att" / f"{img_id}.h5", "r") as f:
        feats = f[f"{img_id}/features"][...].astype(np.float32)
    objects = []
    for slot in SLOTS:
        strength = {c: feats[slot][world.patterns[c] > 0].mean() for c in COLORS + SHAPES}
        if max(strength.values()) > 1.5:
            objects.append((max(COLORS, key=strength.get), max(SHAPES, key=strength.get), slot))
    return objects


@pytest.fixture(scope="module")
def world():
    return World(np.random.default_rng(SEED), F)  # same seed -> same concept patterns


def test_captions_name_the_decoded_objects(root, world):
    for image in load(root, "COCO/dataset_coco.json")["images"]:
        objects = decode(root, "COCO", image["filename"][:-4], world)
        assert image["sentences"][0]["raw"] == " and ".join(f"a {c} {s}" for c, s, _ in objects)


def test_vqa_gqa_answers_follow_from_the_features(root, world):
    for relpath, folder in (("vqa/karpathy_train.json", "COCO"), ("GQA/train.json", "VG"), ("GQA/testdev.json", "GQA")):
        for q in load(root, relpath):
            if not q["label"]:
                continue
            objects = decode(root, folder, q["img_id"], world)
            best = max(q["label"], key=q["label"].get)
            shape = next((s for s in SHAPES if s in q["sent"]), None)
            color = next((c for c in COLORS if c in q["sent"]), None)
            if q["sent"].startswith("is there"):
                assert best == ("yes" if (color, shape) in [(c, s) for c, s, _ in objects] else "no")
            elif "color" in q["sent"]:
                assert best == next(c for c, s, _ in objects if s == shape)
            else:
                assert best == next(s for c, s, _ in objects if c == color)


def test_nlvr_labels_follow_from_the_features(root, world):
    for split in ("train", "valid", "test"):
        for item in load(root, f"nlvr/{split}.json"):
            left, right = (Scene(decode(root, "nlvr", item[k], world)) for k in ("img0", "img1"))
            template = next(t for t in STATEMENTS if re.fullmatch(
                t.replace(".", r"\.").replace("{color}", r"\w+").replace("{shape}", r"\w+"), item["sent"]))
            color = next((c for c in COLORS if c in item["sent"]), None)
            shape = next((s for s in SHAPES if s in item["sent"]), None)
            assert item["label"] == int(STATEMENTS[template](left, right, color, shape))


def test_deterministic_by_seed(tmp_path):
    for name in ("a", "b"):
        write_synthetic(tmp_path / name, n_train=2, n_val=1, n_test=1, seed=7, feat_dim=8)
    for relpath in JSON_FILES:
        assert (tmp_path / "a" / relpath).read_text() == (tmp_path / "b" / relpath).read_text()


def test_main_writes_and_reports(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "--n-train", "2", "--n-val", "1", "--n-test", "1", "--feat-dim", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["h5_files"]["COCO"] == len(list((tmp_path / "COCO").rglob("*.h5")))


@pytest.mark.parametrize("module", ["vlpet.synth", "vlpet.data.synth"])  # the second: the published command line
def test_module_cli(tmp_path, module):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = subprocess.run([sys.executable, "-m", module, "--root", str(tmp_path), "--n-train", "1",
                          "--n-val", "1", "--n-test", "1", "--feat-dim", "8"], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout)["root"] == str(tmp_path)
    assert (tmp_path / "GQA" / "submit.json").is_file()
