"""The on-disk dataset layout of the image-text tasks (pipeline spec §1) and its path helpers.

Tree under the datasets root (file names are the official ones)::

    COCO/dataset_coco.json                                  Karpathy caption split file
    COCO/clip_features/data_clip_RN101_att/<img_id>.h5      VQA and caption images
    vqa/karpathy_{train,val,test}.json                      VQA questions with soft labels
    vqa/v2_mscoco_{train,val}2014_annotations.json          raw VQA annotations (10 answers each)
    vqa/trainval_{ans2label,label2ans}.json                 VQA answer vocabulary
    GQA/{train,valid,testdev,submit}.json                   GQA questions
    GQA/trainval_{ans2label,label2ans}.json                 GQA answer vocabulary
    GQA/clip_features/data_clip_RN101_att/<img_id>.h5       GQA testdev/submit images
    VG/clip_features/data_clip_RN101_att/<img_id>.h5        GQA train/valid images
    nlvr/{train,valid,test}.json                            NLVR2 statements
    nlvr/clip_features/data_clip_RN101_att/<img_id>.h5      NLVR2 images (all splits)

Each h5 file holds one image: the dataset ``<img_id>/features`` of shape (49, feat_dim).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

README_POINTER = "See the README's data section (README.md#data) for the expected layout."

TASK_FOLDERS = ("COCO", "vqa", "GQA", "VG", "nlvr")
DEFAULT_FEATURE = "RN101"
GQA_VG_SPLITS = ("train", "valid")


class DataError(Exception):
    """A user-facing data problem: a missing or unreadable file, always naming the path."""

    def __init__(self, message: str, path: Path | str | None = None):
        super().__init__(f"{message}\n{README_POINTER}")
        self.path = None if path is None else Path(path)


def _checkout_root() -> Path:
    """The repository checkout this package lives in (src layout: <repo>/src/vlpet/data)."""
    return Path(__file__).resolve().parents[3]


def _looks_like_data_root(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_dir() for name in TASK_FOLDERS)


def root_candidates() -> list[Path]:
    """Where the datasets root is looked for, in order: ./datasets, ../datasets, <repo>/datasets, <repo>/../datasets."""
    cwd, repo = Path.cwd(), _checkout_root()
    found: list[Path] = []
    for path in (cwd / "datasets", cwd.parent / "datasets", repo / "datasets", repo.parent / "datasets"):
        if path.resolve() not in [p.resolve() for p in found]:
            found.append(path)
    return found


def resolve_root(root: str | Path | None = None, holds=None, wanted: str | None = None) -> Path:
    """Return the datasets root: ``root`` if given, else the first candidate that ``holds`` the data.

    ``datasets/`` next to the current directory (or the repo) comes first; ``../datasets`` is the fallback, where the
    official code looks (pipeline spec §1.1). By default a candidate must hold an image-text task folder (a folder
    holding only a README does not count); ``holds``/``wanted`` let the video layout ask for ``video/`` instead.
    """
    if root is not None:
        path = Path(root)
        if not path.is_dir():
            raise DataError(f"datasets root not found: {path}", path)
        return path
    holds = holds or _looks_like_data_root
    for path in root_candidates():
        if holds(path):
            return path
    tried = ", ".join(str(p) for p in root_candidates())
    wanted = wanted or f"a folder with {'/'.join(TASK_FOLDERS)}"
    raise DataError(f"no datasets root found (looked for {wanted} in: {tried})")


def require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else raise a DataError naming it and what it should hold."""
    if not path.exists():
        raise DataError(f"missing {what}: {path}", path)
    return path


def read_json(path: Path, what: str) -> Any:
    """Load a JSON file; a missing or malformed file raises a DataError naming the path."""
    require(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {what} {path}: {err}", path) from err


def field(entry: dict, key: str, path: Path, index: int) -> Any:
    """``entry[key]`` for entry ``index`` of the file ``path``; a missing field raises a DataError."""
    try:
        return entry[key]
    except (KeyError, TypeError):
        raise DataError(f"{path}: entry {index} has no field '{key}'", path) from None


class DataLayout:
    """Paths of every file of the image-text tree under one datasets root."""

    def __init__(self, root: str | Path | None = None, feature: str = DEFAULT_FEATURE):
        self.root = resolve_root(root)
        self.feature = feature

    def feature_folder(self, folder: str) -> Path:
        """Folder of the h5 files of one image source: COCO, VG, GQA or nlvr."""
        return self.root / folder / "clip_features" / f"data_clip_{self.feature}_att"

    def coco_features(self) -> Path:
        """Folder of the COCO image h5 files (VQA and caption)."""
        return self.feature_folder("COCO")

    def gqa_features(self, split: str) -> Path:
        """Folder of the GQA image h5 files: VG for train/valid, GQA for testdev/submit."""
        return self.feature_folder("VG" if split in GQA_VG_SPLITS else "GQA")

    def nlvr_features(self) -> Path:
        """Folder of the NLVR2 image h5 files (one folder for every split)."""
        return self.feature_folder("nlvr")

    def coco_karpathy(self) -> Path:
        """The Karpathy caption split file ``COCO/dataset_coco.json``."""
        return self.root / "COCO" / "dataset_coco.json"

    def vqa_split(self, split: str) -> Path:
        """``vqa/<split>.json``, e.g. split ``karpathy_train``."""
        return self.root / "vqa" / f"{split}.json"

    def vqa_annotations(self, subset: str) -> Path:
        """Raw VQA annotations, subset ``train2014`` or ``val2014``."""
        return self.root / "vqa" / f"v2_mscoco_{subset}_annotations.json"

    def answer_vocab(self, task: str) -> tuple[Path, Path]:
        """(ans2label, label2ans) of ``vqa`` or ``gqa``."""
        folder = self.root / {"vqa": "vqa", "gqa": "GQA"}[task]
        return folder / "trainval_ans2label.json", folder / "trainval_label2ans.json"

    def gqa_split(self, split: str) -> Path:
        """``GQA/<split>.json``: train, valid, testdev or submit."""
        return self.root / "GQA" / f"{split}.json"

    def nlvr_split(self, split: str) -> Path:
        """``nlvr/<split>.json``: train, valid (dev) or test (test-P)."""
        return self.root / "nlvr" / f"{split}.json"


def h5_path(folder: Path, img_id: str) -> Path:
    """The h5 file of one image inside a features folder."""
    return folder / f"{img_id}.h5"
