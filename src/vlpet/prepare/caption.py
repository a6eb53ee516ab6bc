"""COCO Caption: ``COCO/dataset_coco.json``, Karpathy's file copied unchanged (data-prep spec §2.1, recipe A), or
rebuilt from BLIP's split files and COCO's captions with ``--karpathy-fallback`` (recipe B, see ``karpathy``). The
file is checked first: every image has a known split, a filename and raw sentences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .karpathy import KARPATHY_FILE, karpathy_map, load_karpathy
from .raw import RawIndex, StagedWrites


def prepare_caption(index: RawIndex, out: Path, staged: StagedWrites, karpathy_fallback: bool = False) -> list[str]:
    """Stage COCO/dataset_coco.json."""
    data, path = load_karpathy(index, karpathy_fallback)
    splits = Counter(karpathy_map(data, path or "the rebuilt Karpathy split").values())
    if path is None:
        staged.write_json(out / "COCO" / KARPATHY_FILE, data)
    else:
        staged.copy(path, out / "COCO" / KARPATHY_FILE)
    recipe = "rebuilt by the fallback recipe, not byte-identical" if path is None else "Karpathy's file"
    return ["caption: " + " / ".join(f"{split} {splits[split]:,}" for split in ("train", "val", "test")) +
            f" images (train = train + restval; {recipe})"]
