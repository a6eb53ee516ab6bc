"""NLVR2 (lil-lab/nlvr ``nlvr2/data``) → ``nlvr/{train,valid,test}.json``: LXMERT's ``process_dataset.py``
(data-prep spec §2.7). ``test2.json`` (the hidden set) is not used."""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import NLVR_FILES, origin
from .raw import PrepareError, RawIndex, StagedWrites, get, read_json_lines


def is_nlvr_lines(path: Path) -> bool:
    """Whether ``path`` looks like an NLVR2 JSON-lines file: its names (``train.json``...) are generic, and NLVR1's
    files of the same names (lil-lab/nlvr ``nlvr/``) have lower-case labels."""
    try:
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "identifier" in first and first.get("label") in ("True", "False")


def record(line: dict, split: str, i: int, path: Path) -> dict:
    """The record of line ``i`` (0-based) of the file of output split ``split``."""
    identifier = get(line, "identifier", path, i)
    label = get(line, "label", path, i)
    if label not in ("True", "False"):
        raise PrepareError(f"{path}: line {i + 1} has label {label!r} (expected \"True\" or \"False\")")
    stem = "-".join(identifier.split("-")[:-1])
    return {"identifier": identifier, "img0": f"{stem}-img0", "img1": f"{stem}-img1",
            "label": 1 if label == "True" else 0, "sent": get(line, "sentence", path, i),
            "uid": f"nlvr2_{split}_{i}"}


def locate(index: RawIndex, fallback: bool = False) -> dict[str, Path]:
    """train/dev/test1.json by output split (``fallback`` is the Karpathy option; unused here)."""
    return {split: index.find(name, origin("nlvr", name), accept=is_nlvr_lines) for split, name in NLVR_FILES.items()}


def prepare_nlvr(index: RawIndex, out: Path, staged: StagedWrites) -> list[str]:
    """Write the nlvr/ folder."""
    paths = locate(index)
    splits = {split: [record(line, split, i, path) for i, line in enumerate(read_json_lines(path))]
              for split, path in paths.items()}
    for split, recs in splits.items():
        staged.write_json(out / "nlvr" / f"{split}.json", recs)
    return ["nlvr: " + " / ".join(f"{split} {len(recs):,}" for split, recs in splits.items()) + " statements"]
