"""What the converters share: finding original files by name below RAW, reading them, and staged (atomic) writes.

Every output of one ``prepare`` command is written under a temporary name and renamed into place only once all of
them are complete, so a failure leaves the output tree as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable


class PrepareError(ValueError):
    """A user-facing problem (missing or malformed original file, bad download): one line, no traceback."""


class RawIndex:
    """The JSON files below ``raw``, by file name (one walk of the tree; the output tree ``exclude`` is skipped)."""

    def __init__(self, raw: str | Path, exclude: str | Path | None = None):
        self.raw = Path(raw)
        if not self.raw.is_dir():
            raise PrepareError(f"--raw folder not found: {self.raw}")
        skip = None if exclude is None else Path(exclude).resolve()
        self.paths: dict[str, list[Path]] = {}
        for folder, subfolders, files in os.walk(self.raw):
            subfolders[:] = [d for d in subfolders if (Path(folder) / d).resolve() != skip]
            for name in files:
                if name.endswith(".json"):
                    self.paths.setdefault(name, []).append(Path(folder) / name)

    def find(self, name: str, where: str, accept: Callable[[Path], bool] | None = None) -> Path:
        """The one file called ``name`` below RAW (that ``accept`` takes, if given); ``where`` says where it comes
        from when it is missing."""
        found = [p for p in self.paths.get(name, []) if accept is None or accept(p)]
        if not found:
            raise PrepareError(f"missing original file {name} (anywhere below {self.raw}); it comes from {where}")
        if len(found) > 1 and len({file_digest(p) for p in found}) > 1:
            listed = ", ".join(str(p) for p in sorted(found))
            raise PrepareError(f"{len(found)} different files named {name} below {self.raw} ({listed}): keep one")
        return sorted(found)[0]

    def optional(self, name: str) -> Path | None:
        """The file called ``name`` if there is exactly one, else None."""
        found = self.paths.get(name, [])
        return found[0] if len(found) == 1 else None


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """``sha256`` of the file, or its ``git-blob`` id (what ``git hash-object`` prints)."""
    if algorithm == "sha256":
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_original(path: Path) -> Any:
    """Parse one original JSON file; a malformed file is a PrepareError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise PrepareError(f"cannot read original file {path}: {err}") from err


def read_json_lines(path: Path) -> list[dict]:
    """Parse a JSON-lines original file (NLVR2)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as err:
        raise PrepareError(f"cannot read original file {path} (JSON lines expected): {err}") from err


def get(entry: dict, key: str, path: Path, where: Any) -> Any:
    """``entry[key]``; a missing key is a PrepareError naming the file and the entry."""
    try:
        return entry[key]
    except (KeyError, TypeError):
        raise PrepareError(f"{path}: entry {where} has no field '{key}'") from None


def remove_stale_staged(out: Path) -> list[Path]:
    """Remove the ``.<name>.json.tmp<pid>`` files that killed ``prepare`` runs left in ``out`` and its task folders
    (those of a process that still runs are kept); returns what was removed."""
    from .pack import pid_alive

    removed = []
    for path in [*Path(out).glob(".*.tmp*"), *Path(out).glob("*/.*.tmp*")]:
        pid = path.name.rsplit(".tmp", 1)[1]
        if path.is_file() and pid.isdigit() and not pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class StagedWrites:
    """Context manager: files are written to temp names and renamed into place together on success; on an error
    every temp file is removed and nothing in the output tree changes."""

    def __init__(self):
        self.pending: list[tuple[Path, Path]] = []
        self.created: list[Path] = []  # folders made for the outputs, removed again on an error

    def _temp(self, final: Path) -> Path:
        missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
        self.created += missing
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        self.pending.append((temp, final))
        return temp

    def write_json(self, final: Path, obj: Any) -> None:
        """Stage ``obj`` as JSON (label and record keys sorted, as LXMERT's ``sort_keys=True`` dumps; no indent:
        ``json.dumps`` without one runs the C encoder, several times faster than ``json.dump``)."""
        with open(self._temp(final), "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, sort_keys=True))

    def copy(self, source: Path, final: Path) -> None:
        """Stage a byte-identical copy of ``source``."""
        shutil.copyfile(source, self._temp(final))

    def __enter__(self) -> "StagedWrites":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            for temp, final in self.pending:
                os.replace(temp, final)
        else:
            for temp, _ in self.pending:
                temp.unlink(missing_ok=True)
            for folder in sorted(set(self.created), key=lambda p: len(p.parts), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        self.pending.clear()
