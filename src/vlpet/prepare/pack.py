"""``python -m vlpet.prepare.pack --root ROOT``: pack each image-feature folder into one memory-mappable array.

The official layout has one h5 file per image (≈600K small files at full scale). For every feature folder under
ROOT (``<task folder>/clip_features/<feature>/`` holding ``<img_id>.h5``) this writes ``packed/`` inside it:

* ``packed/features.npy``: (N, 49, feat_dim) in the files' own dtype (float16 for the official CLIP features),
  a plain ``.npy`` that ``numpy.load(..., mmap_mode="r")`` maps without reading it;
* ``packed/ids.json``: the N image ids in row order (written last: the folder is complete when it is there).

Rows are copied bit for bit. The folder is built under a temporary name (``.packed.tmp-<pid>-*``) and renamed into
place, so a crash leaves either the previous ``packed/`` or none (the loaders then read the h5 files); a later run
removes the temp folders of runs that were killed. The array is written with plain writes after reserving its size,
so a full disk is one error line (and the temp folder is removed), not a bus error. ``vlpet.data.features`` uses the
packed array for every id in its index and falls back to the h5 file otherwise; re-run after changing the h5 files.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
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
    from tqdm.auto import tqdm


    remove_stale(folder)
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise PrepareError(f"no h5 feature files in {folder}")
    ids = [f.stem for f in files]
    first = _read(files[0], ids[0])
    shape = (len(files), N_GRID, first.shape[-1])
    writer = PackedWriter(folder, shape, first.dtype)
    try:
        for row, (path, img_id) in enumerate(tqdm(list(zip(files, ids)), desc=folder.name, disable=not show)):
            feats = first if row == 0 else _read(path, img_id)
            if feats.shape != shape[1:] or feats.dtype != first.dtype:
                raise PrepareError(f"{path}: features {feats.dtype}{tuple(feats.shape)}, but {files[0].name} has "
                                   f"{first.dtype}{shape[1:]}; a packed folder needs one shape and dtype")
            writer.write(row, feats[None])
        writer.commit(ids)
    finally:
        writer.abort()
    return len(ids), shape


def write_bytes(f, data) -> None:
    """One write of the packed array (a plain file write: a full disk is an OSError, never the bus error of a
    memory map written past the disk's end)."""
    f.write(data)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    from ..features.files import _alive

    return _alive(pid)


def remove_stale(folder: Path) -> list[Path]:
    """Remove what killed pack runs left in ``folder``: ``.packed.tmp-<pid>-*`` and ``.packed.old-<pid>-*`` of a
    process that is gone, and the ``.packed.tmp-*`` of older versions (no pid); returns what was removed."""
    removed = []
    for path in folder.glob(f".{PACKED}.*"):
        kind, _, rest = path.name[len(PACKED) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind in ("tmp", "old") and not (pid.isdigit() and pid_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class PackedWriter:
    """Builds ``folder/packed/`` (features.npy (N, 49, D) + ids.json) under a temp name and renames it into place.

    Rows are written at their offsets with plain file writes, so a full disk ends in an OSError (the space is
    reserved up front where the file system allows, so usually before any row is written). ``temp`` names a fixed
    folder to resume into (``prepare archive``); by default a ``.packed.tmp-<pid>-*`` folder that ``abort`` (or a
    later run's ``remove_stale``) removes.
    """

    def __init__(self, folder: Path, shape: tuple[int, ...], dtype, temp: Path | None = None):
        import numpy as np

        self.folder, self.shape, self.dtype = Path(folder), tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                      "fortran_order": False, "shape": self.shape})
        self.header = header.getvalue()
        size = len(self.header) + self.row_bytes * self.shape[0]
        if temp is None:
            self.temp = Path(tempfile.mkdtemp(prefix=f".{PACKED}.tmp-{os.getpid()}-", dir=self.folder))
        else:
            self.temp = Path(temp)
            self.temp.mkdir(parents=True, exist_ok=True)
        path = self.temp / ARRAY
        resume = path.is_file() and path.stat().st_size == size and _head(path, len(self.header)) == self.header
        self.resumed = resume
        self._file = open(path, "r+b" if resume else "wb")
        if not resume:
            try:
                reserve(self._file, size, self.folder)
                write_bytes(self._file, self.header)
                self._file.flush()  # on disk before other handles (RowWriter) write rows
            except BaseException:
                self.abort()
                raise

    def write(self, start: int, rows) -> None:
        """Rows ``start .. start+len(rows)`` (an array of shape (k, *shape[1:]) and the writer's dtype), bit for bit."""
        _write_rows(self._file, len(self.header), self.shape, self.dtype, start, rows)

    def rows_spec(self) -> tuple:
        """What a ``RowWriter`` (in this or another process) needs to write rows into this array."""
        return str(self.temp / ARRAY), len(self.header), self.shape, self.dtype.str

    def flush(self) -> None:
        """Everything written so far is on disk (a resumed run may rely on it)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit(self, ids: list[str]) -> Path:
        """Write ids.json (last: the folder is complete when it is there) and rename the folder into place."""
        if len(ids) != self.shape[0]:
            raise ValueError(f"{len(ids)} ids for {self.shape[0]} rows")
        self.flush()
        self._file.close()
        (self.temp / INDEX).write_text(json.dumps(ids))
        _replace(self.temp, self.folder / PACKED)
        return self.folder / PACKED

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def abort(self) -> None:
        """Close and remove the temp folder (nothing once committed)."""
        self.close()
        if self.temp.exists():
            shutil.rmtree(self.temp, ignore_errors=True)


def _write_rows(f, header: int, shape: tuple, dtype, start: int, rows) -> None:
    if tuple(rows.shape[1:]) != tuple(shape[1:]) or rows.dtype != dtype or start + len(rows) > shape[0]:
        raise ValueError(f"rows {start}.. {rows.dtype}{tuple(rows.shape)} do not fit {dtype}{tuple(shape)}")
    row_bytes = rows[0].nbytes if len(rows) else 0
    f.seek(header + start * row_bytes)
    write_bytes(f, memoryview(rows.reshape(-1).view("u1") if rows.flags.c_contiguous
                              else rows.copy().reshape(-1).view("u1")))


class RowWriter:
    """Writes rows into the (reserved) array of a PackedWriter from any process: its own handle, plain writes."""

    def __init__(self, path: str, header: int, shape: tuple, dtype: str):
        import numpy as np

        self.header, self.shape, self.dtype = header, tuple(shape), np.dtype(dtype)
        self._file = open(path, "r+b")

    def write(self, start: int, rows) -> None:
        _write_rows(self._file, self.header, self.shape, self.dtype, start, rows)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def reserve(f, size: int, folder: Path) -> None:
    """Reserve ``size`` bytes for the open file ``f``: ``posix_fallocate`` where the file system has it (a full disk
    is an OSError now, not halfway), else a check of the free space."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
        return
    except AttributeError:
        pass
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"not enough disk space for {human_bytes(size)} in {folder}") from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    free = shutil.disk_usage(folder).free
    if free < size:
        raise OSError(errno.ENOSPC, f"not enough disk space in {folder}: {human_bytes(size)} needed, "
                                    f"{human_bytes(free)} free")


def human_bytes(size: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


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
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{new.name.lstrip('.')}")
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
    except OSError as err:  # a full disk, a folder that cannot be written: one line, the temp folder is gone
        from ..features.files import disk_message

        print(f"error: {disk_message(err)}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlpet.prepare.pack", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
