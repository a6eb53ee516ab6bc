"""Reading the per-image CLIP grid features: ``<img_id>.h5`` holding ``<img_id>/features`` (49, feat_dim).

Files are opened lazily and kept open per process: each DataLoader worker (and the main process) opens a file once
and reuses the handle. The official layout has one file per image (123K for COCO), more than a process may keep open,
so the cache holds at most ``max_open`` handles and closes the least recently used one beyond that.

A folder packed by ``python -m vlpet.prepare.pack`` (``<folder>/packed/{features.npy,ids.json}``) is read from its
memory-mapped array instead (the same bits); an id missing from its index falls back to the h5 file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import json

import h5py
import numpy as np

from .layout import DataError

from ..formats import ARRAY, INDEX, N_GRID, PACKED


class FeatureReader:
    """Per-process cache of open h5 files; ``read`` returns float32 features of shape (49, feat_dim)."""

    def __init__(self, max_open: int = 512, feat_dim: int | None = None):
        self.max_open = max_open
        self.feat_dim = feat_dim
        self.n_opened = 0
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._files: OrderedDict[Path, h5py.File] = OrderedDict()
        self._packed: dict[Path, tuple[np.ndarray, dict[str, int]] | None] = {}
        self._shapes: dict[Path, tuple[tuple[int, ...], Path]] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"], state["_packed"], state["_shapes"] = OrderedDict(), {}, {}
        return state

    def _packed_rows(self, folder: Path) -> tuple[np.ndarray, dict[str, int]] | None:
        """(memory-mapped array, id → row) of ``folder/packed``, or None when the folder is not packed."""
        if os.getpid() != self._pid:
            self._reset()
        if folder not in self._packed:
            self._packed[folder] = _open_packed(folder)
        return self._packed[folder]

    def _handle(self, path: Path, img_id: str) -> h5py.File:
        if os.getpid() != self._pid:  # a forked worker: never reuse the parent's handles
            self._reset()
        if path in self._files:
            self._files.move_to_end(path)
            return self._files[path]
        if not path.is_file():
            raise DataError(f"missing feature file of image '{img_id}': {path}", path)
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise DataError(f"unreadable feature file {path} (image '{img_id}'): {err}", path) from err
        self.n_opened += 1
        self._files[path] = handle
        if len(self._files) > self.max_open:
            self._files.popitem(last=False)[1].close()
        return handle

    def read(self, path: Path, img_id: str) -> np.ndarray:
        """Features of ``img_id`` as float32 (49, feat_dim): from the packed array of ``path``'s folder when it
        lists the id, else from the h5 file ``path``."""
        packed = self._packed_rows(path.parent)
        if packed is not None and img_id in packed[1]:
            feats = np.asarray(packed[0][packed[1][img_id]])
            self._check_shape(feats, path.parent / "packed", img_id)
            return feats.astype(np.float32)
        key = f"{img_id}/features"
        try:
            feats = self._handle(path, img_id)[key][...]
        except (KeyError, OSError, TypeError) as err:
            raise DataError(f"unreadable feature file {path}: no dataset '{key}' for image '{img_id}' ({err})",
                            path) from err
        self._check_shape(feats, path, img_id)
        return feats.astype(np.float32)

    def _check_shape(self, feats: np.ndarray, path: Path, img_id: str) -> None:
        dim_ok = self.feat_dim is None or feats.shape[-1] == self.feat_dim
        if feats.ndim != 2 or feats.shape[0] != N_GRID or not dim_ok:
            want = f"({N_GRID}, {self.feat_dim or 'feat_dim'})"
            raise DataError(f"unreadable feature file {path}: image '{img_id}' has features of shape "
                            f"{tuple(feats.shape)}, expected {want}", path)
        # one folder holds one shape: a file that differs from the first one read there is named (both files)
        first = self._shapes.setdefault(path.parent, (feats.shape, path))
        if feats.shape != first[0]:
            raise DataError(f"feature file {path} (image '{img_id}') has shape {tuple(feats.shape)}, but {first[1]} "
                            f"in the same folder has {tuple(first[0])}: one of them is wrong (python -m vlpet "
                            f"prepare check --root ROOT lists every bad file)", path)

    def close(self) -> None:
        """Close every handle this process opened."""
        if os.getpid() == self._pid:
            for handle in self._files.values():
                handle.close()
        self._reset()


def _open_packed(folder: Path) -> tuple[np.ndarray, dict[str, int]] | None:
    """Map ``folder/packed/features.npy`` and read its id index; None when ``ids.json`` (written last) is absent."""
    index, array = folder / PACKED / INDEX, folder / PACKED / ARRAY
    if not index.is_file():
        return None
    try:
        ids = json.loads(index.read_text())
        feats = np.load(array, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable packed features in {folder / 'packed'} ({err}); re-run "
                        f"python -m vlpet.prepare.pack or delete the folder to read the h5 files", array) from err
    if feats.ndim != 3 or feats.shape[0] != len(ids):
        raise DataError(f"packed features {array} have shape {feats.shape} for {len(ids)} ids; re-run "
                        f"python -m vlpet.prepare.pack or delete {folder / 'packed'}", array)
    return feats, {img_id: row for row, img_id in enumerate(ids)}
