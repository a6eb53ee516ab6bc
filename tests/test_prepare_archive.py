"""``prepare archive``: a snapshot of locally written parquet shards (the release's Arrow type, zstd, two naming
variants, ids / paths / folder columns) and annotation files becomes the tree the loaders read, bit for bit, in both
layouts, through the CLI; an interrupted conversion resumes; an unrecognised shard is one line; ``prepare download
archive`` goes through huggingface_hub (stubbed)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlpet.__main__ import main
from vlpet.prepare import archive

DIM = 2048


def grid_array(feats: np.ndarray) -> pa.Array:
    """(N, 49, D) float16 -> fixed_size_list<fixed_size_list<halffloat>[D]>[49]."""
    n, rows, dim = feats.shape
    inner = pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), type=pa.float16()), dim)
    return pa.FixedSizeListArray.from_arrays(inner, rows)


def features(rng, n: int) -> np.ndarray:
    """Random float16 bit patterns (every finite value, negative zero, subnormals): bit-exactness is checked on
    more than round numbers."""
    bits = rng.integers(0, 0x7C00, size=(n, 49, DIM), dtype=np.uint16) | (rng.integers(0, 2, (n, 49, DIM),
                                                                                      dtype=np.uint16) << 15)
    return bits.view(np.float16)


def write(path: Path, table: pa.Table, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", **kwargs)


@pytest.fixture
def snapshot(tmp_path):
    """A snapshot in two naming variants; returns (snapshot dir, {folder: {id: (49, D) float16}})."""
    rng = np.random.default_rng(0)
    snap, truth = tmp_path / "snap", {}

    def add(folder, ids, feats):
        truth.setdefault(folder, {}).update({i: f for i, f in zip(ids, feats)})

    coco = "COCO/clip_features/data_clip_RN101_att"
    for part in range(2):  # the release's own layout: features/<D>/<variant>/part-XXXXX.parquet, (id, features)
        ids = [f"COCO_train2014_{part * 10 + i:012d}" for i in range(3)]
        feats = features(rng, 3)
        write(snap / f"features/COCO/data_clip_RN101_att/part-{part:05d}.parquet",
              pa.table({"id": ids, "features": grid_array(feats)}))
        add(coco, ids, feats)
    ids = ["train-1-0-img0", "train-1-0-img1"]
    feats = features(rng, 2)
    write(snap / "features/nlvr/data_clip_RN101_att/part-00000.parquet",
          pa.table({"id": ids, "features": grid_array(feats)}))
    add("nlvr/clip_features/data_clip_RN101_att", ids, feats)
    # a second variant: flat data/ folder, a path column (with the release's clip_featuers spelling) holding VG and
    # GQA rows in one shard, extra columns, small row groups; and a shard placed by a folder column
    ids = ["2375429", "n161313", "2375430", "n17"]
    feats = features(rng, 4)
    paths = [f"datasets/{'VG' if i[0].isdigit() else 'GQA'}/clip_featuers/data_clip_RN101_att/{i}.h5" for i in ids]
    write(snap / "data/train-00000-of-00002.parquet",
          pa.table({"row": pa.array(range(4), pa.int64()), "file_name": paths, "grid": grid_array(feats)}),
          row_group_size=3)
    for i, f, p in zip(ids, feats, paths):
        add(p.split("/", 1)[1].replace("featuers", "features").rsplit("/", 1)[0], [i], [f])
    feats = features(rng, 2)
    write(snap / "data/train-00001-of-00002.parquet",
          pa.table({"image_id": ["n5", "n6"], "dataset": ["GQA", "GQA"], "feat": grid_array(feats)}))
    add("GQA/clip_features/data_clip_RN101_att", ["n5", "n6"], feats)
    for rel, obj in (("annotations/vqa/karpathy_train.json", [{"img_id": "COCO_train2014_000000000000"}]),
                     ("annotations/COCO/dataset_coco.json", {"images": []}),
                     ("annotations/GQA/testdev.json", [{"img_id": "n161313"}]),
                     ("annotations/nlvr/valid.json", [{"img0": "train-1-0-img0"}]),
                     ("annotations/lxmert/mscoco_minival.json", [])):
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).write_text(json.dumps(obj))
    (snap / "README.md").write_text("dataset card")
    (snap / ".gitattributes").write_text("*.parquet filter=lfs")
    (snap / ".cache/huggingface").mkdir(parents=True)
    images = pa.StructArray.from_arrays([pa.array([b"\x89PNG-a", b"\x89PNG-b"], pa.binary()),
                                         pa.array(["x-img0.png", "x-img1.png"])], names=["bytes", "path"])
    write(snap / "images/nlvr/part-00000.parquet", pa.table({"id": ["x-img0", "x-img1"], "image": images}))
    return snap, truth


def assert_tree(root: Path, truth: dict, layout: str) -> None:
    for folder, rows in truth.items():
        if layout == "packed":
            ids = json.loads((root / folder / "packed/ids.json").read_text())
            array = np.load(root / folder / "packed/features.npy")
            assert sorted(ids) == sorted(rows) and array.dtype == np.float16 and array.shape == (len(ids), 49, DIM)
            got = dict(zip(ids, array))
            assert not list((root / folder).glob("*.h5"))
        else:
            got = {}
            for img_id in rows:
                with h5py.File(root / folder / f"{img_id}.h5", "r") as f:
                    assert list(f) == [img_id]
                    got[img_id] = f[f"{img_id}/features"][...]
        for img_id, feats in rows.items():
            assert got[img_id].tobytes() == feats.tobytes(), (folder, img_id)
    assert json.loads((root / "vqa/karpathy_train.json").read_text()) == [{"img_id": "COCO_train2014_000000000000"}]
    assert (root / "COCO/dataset_coco.json").is_file() and (root / "GQA/testdev.json").is_file()
    assert (root / "lxmert/mscoco_minival.json").is_file()
    assert (root / "nlvr/images/x-img1.png").read_bytes() == b"\x89PNG-b"
    assert not (root / "README.md").exists() and not (root / ".gitattributes").exists()
    assert not (root / archive.PROGRESS).exists() and not list(root.rglob(".packed*"))
    assert not list(root.rglob(".*tmp*"))


@pytest.mark.parametrize("layout", ["packed", "h5"])
def test_snapshot_becomes_the_tree_bit_for_bit(snapshot, tmp_path, layout, capsys):
    snap, truth = snapshot
    root = tmp_path / "datasets"
    workers = ["--workers", "2"] if layout == "packed" else []  # shards side by side in two processes
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--layout", layout,
                 "--no-progress", *workers]) == 0
    assert_tree(root, truth, layout)
    out = capsys.readouterr().out
    assert "VG/clip_features/data_clip_RN101_att: 2 images (49, 2048)" in out and "wrote" in out
    # the loaders read the same bits (as float32)
    from vlpet.data.features import FeatureReader

    reader = FeatureReader()
    folder = root / "COCO/clip_features/data_clip_RN101_att"
    img_id, feats = next(iter(truth["COCO/clip_features/data_clip_RN101_att"].items()))
    np.testing.assert_array_equal(reader.read(folder / f"{img_id}.h5", img_id), feats.astype(np.float32))
    # a second run finds everything in place and changes nothing
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--layout", layout,
                 "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamp


def test_interrupted_conversion_resumes(snapshot, tmp_path, monkeypatch):
    snap, truth = snapshot
    root = tmp_path / "datasets"
    real, calls = archive._pack_shard, []

    def dies_on_the_third(shard, writers, offsets):
        calls.append(shard.rel)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(shard, writers, offsets)

    monkeypatch.setattr(archive, "_pack_shard", dies_on_the_third)
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--no-progress"]) == 130
    state = json.loads((root / archive.PROGRESS).read_text())
    (root / f"{archive.PROGRESS}.tmp-4000000").write_text("{")  # as a SIGKILL between write and rename leaves it
    assert len(state["done"]) == 2 and not (root / "COCO/clip_features/data_clip_RN101_att/packed").exists()
    calls.clear()
    monkeypatch.setattr(archive, "_pack_shard", lambda *a: (calls.append(a[0].rel), real(*a)))
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--no-progress"]) == 0
    assert len(calls) == 3 and not set(calls) & set(state["done"])  # only the shards not done before
    assert_tree(root, truth, "packed")


def test_tasks_select_folders_and_files(snapshot, tmp_path):
    snap, truth = snapshot
    root = tmp_path / "datasets"
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--tasks", "gqa",
                 "--no-progress"]) == 0
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("ids.json")) == [
        "GQA/clip_features/data_clip_RN101_att/packed/ids.json", "VG/clip_features/data_clip_RN101_att/packed/ids.json"]
    assert (root / "GQA/testdev.json").is_file() and not (root / "vqa").exists() and not (root / "lxmert").exists()


def test_unrecognised_shard_is_one_line_with_schema_and_keys(tmp_path, capsys):
    snap = tmp_path / "snap"
    write(snap / "features/COCO/x.parquet", pa.table({"id": ["a"], "vector": pa.array([[1, 2]], pa.list_(pa.int32())),
                                                      "meta": pa.array([{"w": 1, "h": 2}])}))
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "features/COCO/x.parquet" in err and "schema: id: string; vector: list<" in err
    assert "first row's keys: id, vector, meta{w, h}" in err and not (tmp_path / "out").exists()


def test_no_folder_anywhere_is_one_line(tmp_path, capsys):
    snap = tmp_path / "snap"
    feats = features(np.random.default_rng(1), 1)
    write(snap / "shards/part-0.parquet", pa.table({"key": ["a"], "x": grid_array(feats)}))
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no feature folder" in err and "schema: key: string; x: fixed_size_list" in err


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", ".."])
def test_unsafe_image_id_is_refused_naming_the_shard(tmp_path, capsys, bad):
    snap = tmp_path / "snap"
    feats = features(np.random.default_rng(1), 1)
    write(snap / "features/VG/p.parquet", pa.table({"img_id": [bad], "features": grid_array(feats)}))
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "features/VG/p.parquet" in err and "refused" in err and not (tmp_path / "out").exists()


def test_different_existing_file_is_never_overwritten(snapshot, tmp_path, capsys):
    snap, _ = snapshot
    root = tmp_path / "datasets"
    (root / "vqa").mkdir(parents=True)
    (root / "vqa/karpathy_train.json").write_text("[]")
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root)]) == 2
    assert "differ from the snapshot" in capsys.readouterr().err
    assert (root / "vqa/karpathy_train.json").read_text() == "[]" and not list(root.rglob("*.npy"))


def test_discovery_of_other_shapes_and_list_types(tmp_path):
    """Plain (variable) lists of float32 with another grid size, an integer id column, a file-name-only place."""
    snap = tmp_path / "snap"
    feats = np.random.default_rng(2).standard_normal((3, 49, 16)).astype(np.float32)
    column = pa.array(feats.tolist(), pa.list_(pa.list_(pa.float32())))
    write(snap / "vg_part0.parquet", pa.table({"image_id": pa.array([7, 8, 9], pa.int64()), "f": column}))
    summary = archive.convert(snap, tmp_path / "out", "packed")
    assert summary["folders"] == {"VG/clip_features/data_clip_RN101_att": {"images": 3, "shape": [49, 16]}}
    array = np.load(tmp_path / "out/VG/clip_features/data_clip_RN101_att/packed/features.npy")
    assert array.dtype == np.float32 and array.tobytes() == feats.tobytes()


def test_download_archive_through_huggingface_hub(monkeypatch, tmp_path, capsys):
    calls = []

    class File:
        def __init__(self, path, size):
            self.path, self.size = path, size

    class HfApi:
        def __init__(self, **kwargs):
            pass

        def list_repo_tree(self, repo, repo_type, recursive):
            calls.append(("tree", repo, repo_type))
            return [File("features/COCO/data_clip_RN101_att/part-00000.parquet", 300_000_000),
                    File("annotations/vqa/karpathy_train.json", 1_000)]

    def snapshot_download(repo, repo_type, local_dir, **kwargs):
        calls.append(("snapshot", repo, repo_type, Path(local_dir)))
        return str(local_dir)

    hub = types.SimpleNamespace(HfApi=HfApi, snapshot_download=snapshot_download)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    assert main(["prepare", "download", "archive", "--to", str(tmp_path / "snap"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "part-00000.parquet" in out and "300.0 MB" in out and "2 files" in out
    assert [c[0] for c in calls] == ["tree"]
    assert main(["prepare", "download", "archive", "--to", str(tmp_path / "snap")]) == 0
    assert calls[-1] == ("snapshot", "ylsung/VL-Adapter-datasets", "dataset", tmp_path / "snap")

    class RepositoryNotFoundError(Exception):
        pass

    def gone(*args, **kwargs):
        raise RepositoryNotFoundError("404 Client Error. Repository Not Found for url: ...\nmore")

    hub.HfApi = lambda **kwargs: types.SimpleNamespace(list_repo_tree=gone)
    assert main(["prepare", "download", "archive", "--to", str(tmp_path / "snap")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gone, renamed or private" in err and "ylsung/VL-Adapter-datasets" in err


def test_release_shaped_snapshot_of_a_tree_round_trips_and_passes_check(tmp_path, capsys):
    """A datasets tree (synthetic) turned into the release's shards and annotations/ folder, then back: the
    packed tree holds the h5 files' bits, and prepare check passes on it without any h5 file."""
    from vlpet.synth.image import write_synthetic

    tree, snap = tmp_path / "tree", tmp_path / "snap"
    write_synthetic(tree, n_train=2, n_val=2, n_test=2, feat_dim=16)
    truth = {}
    for folder in sorted(tree.glob("*/clip_features/data_clip_RN101_att")):
        task = folder.parts[-3]
        rows = {}
        for path in sorted(folder.glob("*.h5")):
            with h5py.File(path, "r") as f:
                rows[path.stem] = f[f"{path.stem}/features"][...]
        truth[folder.relative_to(tree).as_posix()] = rows
        write(snap / f"features/{task}/data_clip_RN101_att/part-00000.parquet",
              pa.table({"id": list(rows), "features": grid_array(np.stack(list(rows.values())))}))
    for path in tree.rglob("*.json"):
        dest = snap / "annotations" / path.relative_to(tree)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    root = tmp_path / "datasets"
    assert main(["prepare", "archive", "--snapshot", str(snap), "--out", str(root), "--no-progress"]) == 0
    for folder, rows in truth.items():
        ids = json.loads((root / folder / "packed/ids.json").read_text())
        array = np.load(root / folder / "packed/features.npy")
        assert {i: array[k].tobytes() for k, i in enumerate(ids)} == {i: r.tobytes() for i, r in rows.items()}
    assert not list(root.rglob("*.h5"))
    capsys.readouterr()
    assert main(["prepare", "check", "--root", str(root)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
