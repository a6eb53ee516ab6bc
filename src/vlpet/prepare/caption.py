"""COCO Caption: Karpathy's ``dataset_coco.json``, copied unchanged to ``COCO/dataset_coco.json`` (data-prep spec
§2.1, recipe A). The file is checked first: every image has a known split, a filename and raw sentences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .manifest import origin
from .raw import RawIndex, StagedWrites
from .vqa import KARPATHY_FILE, karpathy_map


def prepare_caption(index: RawIndex, out: Path, staged: StagedWrites) -> list[str]:
    """Write COCO/dataset_coco.json."""
    path = index.find(KARPATHY_FILE, origin("caption", KARPATHY_FILE))
    splits = Counter(karpathy_map(path).values())
    staged.copy(path, out / "COCO" / KARPATHY_FILE)
    return ["caption: " + " / ".join(f"{split} {splits[split]:,}" for split in ("train", "val", "test")) +
            " images (train = train + restval)"]
