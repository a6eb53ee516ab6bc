"""Reading the per-image CLIP grid features: ``<img_id>.h5`` holding ``<img_id>/features`` (49, feat_dim).

Files are opened lazily and kept open per process: each DataLoader worker (and the main process) opens a file once
and reuses the handle. The official layout has one file per image (123K for COCO), more than a process may keep open,
so the cache holds at most ``max_open`` handles and closes the least recently used one beyond that.

A folder packed by ``python -m vlpet.prepare.pack`` (``<folder>/packed/{features.npy,ids.json}``) is read from its
memory-mapped array instead (the same bits); an id missing from its index falls back to the h5 file.

``gather`` reads the images of a whole batch into one tensor: each packed folder's rows in row order (one sorted
pass over the map, each row copied once, straight into its batch slot), in the stored dtype when every image is
stored in float16 (the official features; lossless, and half the bytes to move), else float32. The float16 values
are widened to float32 on the model's device (``device.to_device``), giving the exact values of ``read``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import get_worker_info

from .layout import DataError, h5_path

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
            array = None if self._packed[folder] is None else self._packed[folder][0]
            if array is not None and (array.shape[1] != N_GRID or self.feat_dim not in (None, array.shape[2])):
                want = f"({N_GRID}, {self.feat_dim or 'feat_dim'})"
                raise DataError(f"packed features {folder / 'packed'} have rows of shape {array.shape[1:]}, expected "
                                f"{want}; re-run python -m vlpet.prepare.pack or delete the folder", folder / "packed")
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
            return np.asarray(packed[0][packed[1][img_id]]).astype(np.float32)
        return self._read_h5(path, img_id).astype(np.float32)

    def gather(self, images: Sequence[tuple[Path, str]], pin_memory: bool = False) -> torch.Tensor:
        """Features of the images ``(folder, img_id)`` as one (n, 49, feat_dim) tensor: float16 when every image is
        stored in float16, else float32 (the values of ``read``). Packed rows are copied folder by folder in row
        order, each straight into its slot; ids a packed index does not list are read from their h5 files.

        The tensor is allocated in pinned memory with ``pin_memory`` (main process only: the loader pins what
        workers send) and, inside a DataLoader worker, in shared memory, so that handing it to the main process
        copies nothing."""
        packed: dict[Path, tuple[np.ndarray, list[tuple[int, int]]]] = {}
        loose: list[tuple[int, np.ndarray]] = []
        indexes = {}
        for slot, (folder, img_id) in enumerate(images):
            rows = indexes[folder] if folder in indexes else indexes.setdefault(folder, self._packed_rows(folder))
            row = None if rows is None else rows[1].get(img_id)
            if row is None:
                loose.append((slot, self._read_h5(h5_path(folder, img_id), img_id)))
            else:
                packed.setdefault(folder, (rows[0], []))[1].append((row, slot))
        sources = [array for array, _ in packed.values()] + [feats for _, feats in loose]
        dims = {array.shape[-1] for array in sources}
        if len(dims) > 1:
            where = ", ".join(str(folder) for folder in packed) or str(images[0][0])
            raise DataError(f"features of one batch have different dimensions {sorted(dims)} ({where}); every "
                            "feature folder of a task must hold one feature type", images[0][0])
        dim = dims.pop() if dims else (self.feat_dim or 0)
        half = all(array.dtype == np.float16 for array in sources)
        out = _empty((len(images), N_GRID, dim), torch.float16 if half else torch.float32, pin_memory)
        buffer = out.numpy()
        for array, rows in packed.values():
            for row, slot in sorted(rows):
                buffer[slot] = array[row]
        for slot, feats in loose:
            buffer[slot] = feats
        return out

    def _read_h5(self, path: Path, img_id: str) -> np.ndarray:
        """The stored (49, feat_dim) features of ``img_id`` in the h5 file ``path``, in the file's dtype."""
        key = f"{img_id}/features"
        try:
            feats = self._handle(path, img_id)[key][...]
        except (KeyError, OSError, TypeError) as err:
            raise DataError(f"unreadable feature file {path}: no dataset '{key}' for image '{img_id}' ({err})",
                            path) from err
        self._check_shape(feats, path, img_id)
        return feats

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


def _empty(shape: tuple[int, ...], dtype: torch.dtype, pin_memory: bool) -> torch.Tensor:
    """An uninitialised CPU tensor: in shared memory inside a DataLoader worker (as torch's default collate
    allocates its batches there), else pinned when ``pin_memory``."""
    if get_worker_info() is not None:
        numel = int(np.prod(shape))
        storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
        return torch.empty(0, dtype=dtype).new(storage).view(shape)
    return torch.empty(shape, dtype=dtype, pin_memory=pin_memory)


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
    return np.asarray(feats), {img_id: row for row, img_id in enumerate(ids)}  # a plain view: cheaper rows
