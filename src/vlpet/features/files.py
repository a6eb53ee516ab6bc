"""What the extract loops share: listing inputs by id, sharding, resumable atomic outputs, the skipped-file report."""

from __future__ import annotations

import errno
import json
import os
import zlib
from pathlib import Path
from typing import Callable

SKIPPED_NAME = "skipped.txt"


def file_id(path: Path) -> str:
    """The id of an input file: its name up to the first dot (``COCO_val2014_000000391895.jpg`` ->
    ``COCO_val2014_000000391895``), as the original extractor (``filename.split(".")[0]``)."""
    return path.name.split(".")[0]


def list_inputs(root: str | Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """Every file below ``root`` (recursive) whose suffix (lower case) is in ``suffixes``, by id, sorted by id.
    A missing folder, no inputs, or two files with one id are errors (ValueError) naming the files."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{what} folder not found: {root}")
    found: dict[str, Path] = {}
    clashes = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file()):
        if file_id(path) in found:
            clashes.append(f"{found[file_id(path)]} and {path}")
        found.setdefault(file_id(path), path)
    if clashes:
        raise ValueError(f"{len(clashes)} {what} ids are not unique (the output is <id>.*): " + "; ".join(clashes[:5]))
    if not found:
        raise ValueError(f"no {what} files ({', '.join(suffixes)}) below {root}")
    return dict(sorted(found.items()))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 0 <= K < N; None stays None. A bad value is a ValueError saying the form."""
    if text is None:
        return None
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be K/N with integers (e.g. 0/4), got {text!r}") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 <= K < N (shards are numbered from 0), got {text!r}")
    return k, n


def in_shard(item_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``item_id`` belongs to shard K of N: crc32(id) mod N == K. It depends on the id alone, so machines
    holding different copies of the folders still agree, and the N shards are disjoint and cover everything."""
    return shard is None or zlib.crc32(item_id.encode("utf-8")) % shard[1] == shard[0]


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary name in the same folder, then rename it to ``path``: a file under the final name
    is always complete. The temporary file is removed on failure."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def skipped_path(out_dir: Path, shard: tuple[int, int] | None) -> Path:
    """``<out>/skipped.txt``, or ``<out>/skipped.shard-K-of-N.txt`` for a shard (shards may share ``out``)."""
    return out_dir / (SKIPPED_NAME if shard is None else f"skipped.shard-{shard[0]}-of-{shard[1]}.txt")


def write_skipped(out_dir: Path, shard: tuple[int, int] | None, skipped: list[tuple[Path, str]]) -> Path | None:
    """Write this run's unreadable inputs (``path<TAB>reason`` lines); with none, remove a stale report."""
    path = skipped_path(out_dir, shard)
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    text = "".join(f"{p}\t{reason}\n" for p, reason in skipped)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for reports."""
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0]}" if message else type(err).__name__


ID_KEYS = ("img_id", "img0", "img1", "image_id", "imageId")


def _id_of(value, source: Path, where: str) -> str:
    """One image id from an annotation value: the name up to its first dot (``COCO_val2014_X.jpg`` -> ``COCO_...``),
    refused (ValueError naming ``source``) when it is no plain file name."""
    text = str(value).strip()
    if "/" in text or "\\" in text or text.startswith("..") or not text or "\0" in text:
        raise ValueError(f"{source}: {where} has the image id {text!r}, which is no plain file name (it contains "
                         "'/', '\\' or '..', or is empty); refused")
    return text.split(".")[0]


def read_ids(paths: list[str | Path]) -> set[str]:
    """The image ids named by annotation files (``--ids-from``): the loaders' JSON lists (``img_id``; NLVR2's
    ``img0``/``img1``; ``image_id``), ``dataset_coco.json`` (``images[*].filename``), GQA's original question files
    (``{qid: {"imageId": ...}}``), a JSON list of ids, or a text file with one id (or file name) per line."""
    ids: set[str] = set()
    for path in map(Path, paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ValueError(f"--ids-from {path}: {err.strerror or err}") from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
            if path.suffix.lower() == ".json":
                raise ValueError(f"--ids-from {path}: not valid JSON") from None
        before = len(ids)
        if data is None:
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    ids.add(_id_of(line, path, f"line {n}"))
        elif isinstance(data, dict) and isinstance(data.get("images"), list):
            for n, image in enumerate(data["images"]):
                name = image.get("filename", image.get("file_name")) if isinstance(image, dict) else None
                if name is None:
                    raise ValueError(f"--ids-from {path}: images[{n}] has no filename")
                ids.add(_id_of(name, path, f"images[{n}]"))
        else:
            entries = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else None
            if entries is None:
                raise ValueError(f"--ids-from {path}: expected a JSON list or object of annotations")
            for n, entry in enumerate(entries):
                if isinstance(entry, (str, int)):
                    ids.add(_id_of(entry, path, f"entry {n}"))
                    continue
                found = [entry[k] for k in ID_KEYS if isinstance(entry, dict) and k in entry]
                if not found:
                    raise ValueError(f"--ids-from {path}: entry {n} names no image (none of {', '.join(ID_KEYS)})")
                ids.update(_id_of(v, path, f"entry {n}") for v in found)
        if len(ids) == before and not (data == [] or data == {}):
            raise ValueError(f"--ids-from {path}: no image ids found")
    return ids


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the ``.<name>.tmp-<pid>`` files of killed runs (the process is gone) from ``folder``."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp-*"):
        pid = path.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and path.is_file() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disk_message(err: OSError) -> str:
    """One line for an OSError while writing; a full disk says so and what to do."""
    text = err.strerror or str(err)
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return (f"disk full{where}: {text}; this run's temporary files were removed, finished outputs kept: free "
                "space (or write elsewhere) and run the same command again")
    return f"{text}{where}"
