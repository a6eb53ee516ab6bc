"""``prepare check``: passes on the synthetic tree, fails clearly on broken ones, ``--strict`` holds a tree to the
published release."""

import json
import shutil

import h5py
import numpy as np
import pytest

from vlpet.__main__ import main
from vlpet.synth.image import write_synthetic

COCO = "COCO/clip_features/data_clip_RN101_att"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "datasets"
    write_synthetic(root, n_train=4, n_val=2, n_test=2, feat_dim=2048)
    return root


@pytest.fixture
def tree(synthetic, tmp_path):
    shutil.copytree(synthetic, tmp_path / "datasets")
    return tmp_path / "datasets"


def check(root, *args):
    return main(["prepare", "check", "--root", str(root), *args])


def test_synthetic_tree_passes_and_fails_under_strict(synthetic, capsys):
    assert check(synthetic) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("OK") and "\nproblems" not in out and "published 605,102" in out
    assert len(out.splitlines()) <= 24
    assert check(synthetic, "--strict") == 1
    assert capsys.readouterr().out.rstrip().endswith("FAILED")


def test_missing_feature_files_are_counted_with_the_first_ids(tree, capsys):
    files = sorted((tree / COCO).glob("*.h5"))
    for path in files[:3]:
        path.unlink()
    assert check(tree, "--tasks", "vqa,caption") == 1
    out = capsys.readouterr().out
    assert f"COCO: 3 of {len(files)} feature files missing" in out and files[0].stem in out


def test_gqa_submit_images_are_optional(tree, capsys):
    submit = {r["img_id"] for r in json.loads((tree / "GQA/submit.json").read_text())}
    for img_id in submit:
        (tree / "GQA/clip_features/data_clip_RN101_att" / f"{img_id}.h5").unlink()
    assert check(tree, "--tasks", "gqa") == 0
    assert f"GQA: {len(submit)} submit.json images have no feature file" in capsys.readouterr().out
    assert check(tree, "--tasks", "gqa", "--strict") == 1


def test_annotation_only_check_skips_features(tree, capsys):
    shutil.rmtree(tree / "nlvr/clip_features")
    assert check(tree, "--tasks", "nlvr") == 1
    assert check(tree, "--tasks", "nlvr", "--no-features") == 0


def rewrite(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("relative, change, message", [
    ("vqa/karpathy_train.json", lambda d: d[0].pop("sent"), "entry 0 no field 'sent'"),
    ("vqa/karpathy_val.json", lambda d: d[0].update(question_id=str(d[0]["question_id"])), "'question_id' is str"),
    ("vqa/karpathy_test.json", lambda d: d[0].update(label={"yes": 0.5}), "label score outside"),
    ("vqa/karpathy_test.json", lambda d: d[0].pop("is_topk_optimal"), "is_topk_optimal missing"),
    ("vqa/trainval_label2ans.json", lambda d: d.reverse(), "disagree"),
    ("GQA/train.json", lambda d: d[0].update(label={"yes": 1}), "label must be"),
    ("GQA/testdev.json", lambda d: d[0].update(question_id=7), "'question_id' is int"),
    ("nlvr/valid.json", lambda d: d[0].update(label=2), "label must be 0 or 1"),
    ("COCO/dataset_coco.json", lambda d: d["images"][0].update(split="holdout"), "needs split"),
])
def test_broken_annotations_fail_clearly(tree, capsys, relative, change, message):
    rewrite(tree / relative, change)
    assert check(tree) == 1
    out = capsys.readouterr().out
    assert "problems (1):" in out and message in out


def test_missing_and_malformed_files(tree, capsys):
    (tree / "nlvr/test.json").unlink()
    (tree / "GQA/valid.json").write_text("[{")
    assert check(tree, "--no-features") == 1
    out = capsys.readouterr().out
    assert "missing nlvr/test.json" in out and "unreadable GQA/valid.json" in out


@pytest.mark.parametrize("data, message", [
    (np.zeros((49, 2048), np.float16), "all zero"),
    (np.ones((36, 2048), np.float16), "shape (36, 2048)"),
    (np.full((49, 2048), np.nan, np.float16), "non-finite"),
])
def test_bad_feature_files_fail(tree, capsys, data, message):
    for path in (tree / "nlvr/clip_features/data_clip_RN101_att").glob("*.h5"):
        with h5py.File(path, "w") as f:
            f.create_dataset(f"{path.stem}/features", data=data)
    assert check(tree, "--tasks", "nlvr") == 1
    assert message in capsys.readouterr().out


def test_float32_features_are_a_deviation_and_a_misnamed_group_a_problem(tree, capsys):
    paths = sorted((tree / "VG/clip_features/data_clip_RN101_att").glob("*.h5"))
    for path in paths:
        with h5py.File(path, "w") as f:
            f.create_dataset(f"{path.stem}/features", data=np.ones((49, 2048), np.float32))
    assert check(tree, "--tasks", "gqa") == 0
    assert "float32, published (49, 2048) float16" in capsys.readouterr().out
    with h5py.File(paths[0], "w") as f:
        f.create_dataset("other/features", data=np.ones((49, 2048), np.float16))
    assert check(tree, "--tasks", "gqa") == 1
    assert "expected exactly one group" in capsys.readouterr().out


def test_bad_arguments_are_one_line(tmp_path, synthetic, capsys):
    assert check(tmp_path / "nope") == 2
    assert check(synthetic, "--tasks", "vqa,coco") == 2
    err = capsys.readouterr().err
    assert "--root folder not found" in err and "unknown task(s) coco" in err


def test_a_packed_folder_counts_as_present(tree, capsys):
    """prepare archive writes packed folders without h5 files (its default layout); pack may replace them too."""
    from vlpet.prepare.pack import pack_folder

    pack_folder(tree / COCO, show=False)
    for path in (tree / COCO).glob("*.h5"):
        path.unlink()
    assert check(tree, "--tasks", "vqa,caption") == 0
    out = capsys.readouterr().out
    assert "COCO h5 + packed" in out and out.rstrip().endswith("OK")
