"""The Karpathy split (``dataset_coco.json``): Karpathy's own file (recipe A, exact), or, since its host is gone, the
fallback of data-prep spec §2.1 recipe B (``--karpathy-fallback``; same splits, not byte-identical):

* val / test images: BLIP's ``coco_karpathy_{val,test}.json`` (5,000 ``val2014`` images each);
* every other image of COCO's ``captions_{train,val}2014.json``: ``train``;
* sentences: one ``{"raw": caption}`` per COCO caption annotation, in annotation order.
"""

from __future__ import annotations

from pathlib import Path

from .manifest import origin
from .raw import PrepareError, RawIndex, get, read_original

KARPATHY_FILE = "dataset_coco.json"
BLIP_FILES = {"val": "coco_karpathy_val.json", "test": "coco_karpathy_test.json"}
COCO_CAPTIONS = {"train2014": "captions_train2014.json", "val2014": "captions_val2014.json"}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def karpathy_map(data: dict, where: Path | str) -> dict[str, str]:
    """{image stem: train|val|test} from the Karpathy split object, whose images must all have a known split, a
    filename and sentences with a ``raw`` text."""
    out = {}
    for index, image in enumerate(get(data, "images", where, "root")):
        split = get(image, "split", where, index)
        if split not in KARPATHY_SPLITS:
            raise PrepareError(f"{where}: image {index} has split '{split}' (expected {', '.join(KARPATHY_SPLITS)})")
        for sentence in get(image, "sentences", where, index):
            get(sentence, "raw", where, index)
        out[get(image, "filename", where, index).rsplit(".", 1)[0]] = KARPATHY_SPLITS[split]
    return out


def validate(kind: str, path: Path) -> None:
    """A downloaded copy of a Karpathy-split file must hold the split's images: ``karpathy`` (dataset_coco.json:
    ``manifest.KARPATHY_COUNTS`` images per split, restval counted as train) or ``blip-val`` / ``blip-test``
    (``manifest.BLIP_COUNT`` distinct val2014 images). A PrepareError says what the copy holds instead."""
    from . import manifest

    data = read_original(path)
    if kind == "karpathy":
        counts = dict.fromkeys(manifest.KARPATHY_COUNTS, 0)
        for split in karpathy_map(data, path).values():
            counts[split] = counts.get(split, 0) + 1
        if counts != manifest.KARPATHY_COUNTS:
            got = " / ".join(f"{counts.get(k, 0):,}" for k in manifest.KARPATHY_COUNTS)
            want = " / ".join(f"{v:,}" for v in manifest.KARPATHY_COUNTS.values())
            raise PrepareError(f"holds {got} train / val / test images, not {want}")
        return
    if not isinstance(data, list):
        raise PrepareError("not a JSON list of {\"image\": ..., \"caption\": ...} (BLIP's format)")
    images = {Path(get(entry, "image", path, i)).name for i, entry in enumerate(data)}
    outside = [name for name in images if not name.startswith("COCO_val2014_")]
    if len(images) != manifest.BLIP_COUNT or outside:
        raise PrepareError(f"holds {len(images):,} distinct images ({len(outside)} not from val2014), not "
                           f"{manifest.BLIP_COUNT:,} val2014 images")


def blip_splits(index: RawIndex) -> dict[str, str]:
    """{file name: val|test} from BLIP's Karpathy files."""
    splits = {}
    for split, name in BLIP_FILES.items():
        path = index.find(name, origin("caption", name))
        entries = read_original(path)
        if not isinstance(entries, list):
            raise PrepareError(f"{path}: expected a JSON list of {{\"image\": ..., \"caption\": [...]}}")
        for i, entry in enumerate(entries):
            splits[Path(get(entry, "image", path, i)).name] = split
    return splits


def coco_images(index: RawIndex, subset: str, splits: dict[str, str]) -> list[dict]:
    """The dataset_coco.json images of one COCO subset, sentences in annotation order."""
    name = COCO_CAPTIONS[subset]
    path = index.find(name, origin("caption", name))
    data = read_original(path)
    images = {}
    for i, image in enumerate(get(data, "images", path, "root")):
        filename = get(image, "file_name", path, i)
        images[get(image, "id", path, i)] = {"filepath": subset, "filename": filename, "cocoid": image["id"],
                                             "split": splits.get(filename, "train"), "sentences": []}
    for i, annotation in enumerate(get(data, "annotations", path, "root")):
        image = images.get(get(annotation, "image_id", path, i))
        if image is None:
            raise PrepareError(f"{path}: caption {i} names image {annotation['image_id']}, which is not in its images")
        image["sentences"].append({"raw": get(annotation, "caption", path, i)})
    return list(images.values())


def fallback_karpathy(index: RawIndex) -> dict:
    """dataset_coco.json rebuilt by recipe B."""
    splits = blip_splits(index)
    images = coco_images(index, "train2014", splits) + coco_images(index, "val2014", splits)
    outside = [name for name in splits if not name.startswith("COCO_val2014_")]
    if outside:
        raise PrepareError(f"BLIP's Karpathy val/test must be val2014 images; {len(outside)} are not, "
                           f"e.g. {outside[0]}")
    known = {image["filename"] for image in images}
    lost = sorted(set(splits) - known)
    if lost:
        raise PrepareError(f"{len(lost)} Karpathy val/test images are in no COCO captions file, e.g. {lost[0]}")
    for imgid, image in enumerate(images):
        image["imgid"] = imgid
    return {"images": images, "dataset": "coco", "note": "rebuilt by vlpet prepare --karpathy-fallback (data-prep "
            "spec §2.1 recipe B): Karpathy's splits, COCO's captions; not byte-identical to Karpathy's file"}


def locate(index: RawIndex, fallback: bool = False) -> dict[str, Path]:
    """The original files of the Karpathy split (Karpathy's file, or the fallback's four)."""
    if fallback:
        return {name: index.find(name, origin("caption", name))
                for name in (*BLIP_FILES.values(), *COCO_CAPTIONS.values())}
    where = origin("caption", KARPATHY_FILE) + ("; or rebuild it with --karpathy-fallback from BLIP's coco_karpathy_"
                                                "{val,test}.json and COCO's captions_{train,val}2014.json")
    return {KARPATHY_FILE: index.find(KARPATHY_FILE, where)}


def load_karpathy(index: RawIndex, fallback: bool) -> tuple[dict, Path | None]:
    """(the dataset_coco.json object, its original path or None when rebuilt)."""
    if fallback:
        return fallback_karpathy(index), None
    path = locate(index)[KARPATHY_FILE]
    return read_original(path), path
