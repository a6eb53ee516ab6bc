"""``python -m vlpet.prepare.pack --root ROOT``: pack each image-feature folder into one memory-mappable array.

The official layout has one h5 file per image (≈600K small files at full scale). For every feature folder under
ROOT (``<task folder>/clip_features/<feature>/`` holding ``<img_id>.h5``) this writes ``packed/`` inside it:

* ``packed/features.npy``: (N, 49, feat_dim) in the files' own dtype (float16 for the official CLIP features),
  a plain ``.npy`` that ``numpy.load(..., mmap_mode="r")`` maps without reading it;
* ``packed/ids.json``: the N image ids in row order (written last: the folder is complete when it is there).

Rows are copied bit for bit. The folder is built under a temporary name and renamed into place, so a crash leaves
either the previous ``packed/`` or none (the loaders then read the h5 files). ``vlpet.data.features`` uses the
packed array for every id in its index and falls back to the h5 file otherwise; re-run after changing the h5 files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ..formats import ARRAY, INDEX, N_GRID, PACKED
from .raw import PrepareError



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="datasets root (the folder holding COCO/, VG/, GQA/, nlvr/)")
    parser.add_argument("--folders", nargs="*", default=None,
                        help="feature folders to pack (default: every <task>/clip_features/<feature>/ under --root)")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")


def feature_folders(root: Path) -> list[Path]:
    """Every ``<task>/clip_features/<feature>/`` under ``root`` that holds h5 files."""
    return sorted(f for f in root.glob("*/clip_features/*") if f.is_dir() and any(f.glob("*.h5")))


def pack_folder(folder: Path, show: bool = True) -> tuple[int, tuple[int, ...]]:
    """Write ``folder/packed/``; returns (number of images, array shape)."""
    import numpy as np
    from tqdm.auto import tqdm


    files = sorted(folder.glob("*.h5"))
    if not files:
        raise PrepareError(f"no h5 feature files in {folder}")
    ids = [f.stem for f in files]
    first = _read(files[0], ids[0])
    shape = (len(files), N_GRID, first.shape[-1])
    tmp = Path(tempfile.mkdtemp(prefix=f".{PACKED}.tmp-", dir=folder))
    try:
        out = np.lib.format.open_memmap(tmp / ARRAY, mode="w+", dtype=first.dtype, shape=shape)
        for row, (path, img_id) in enumerate(tqdm(list(zip(files, ids)), desc=folder.name, disable=not show)):
            feats = first if row == 0 else _read(path, img_id)
            if feats.shape != shape[1:] or feats.dtype != first.dtype:
                raise PrepareError(f"{path}: features {feats.dtype}{tuple(feats.shape)}, but {files[0].name} has "
                                   f"{first.dtype}{shape[1:]}; a packed folder needs one shape and dtype")
            out[row] = feats
        out.flush()
        del out
        (tmp / INDEX).write_text(json.dumps(ids))
        _replace(tmp, folder / PACKED)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(ids), shape


def _read(path: Path, img_id: str):
    """The raw (not converted) features of one h5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f[f"{img_id}/features"][...]
    except (KeyError, OSError) as err:
        raise PrepareError(f"unreadable feature file {path}: no dataset '{img_id}/features' ({err})") from err


def _replace(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{new.name}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    try:
        if not root.is_dir():
            raise PrepareError(f"datasets root not found: {root}")
        folders = [Path(f) for f in args.folders] if args.folders else feature_folders(root)
        if not folders:
            raise PrepareError(f"no feature folders (<task>/clip_features/<feature>/*.h5) under {root}")
        for folder in folders:
            n, shape = pack_folder(folder, show=not args.no_progress)
            print(f"packed {n} images into {folder / PACKED / ARRAY} {shape}", flush=True)
    except PrepareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlpet.prepare.pack", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
