"""``prepare check --root ROOT``: hold a datasets tree to what the loaders need and to the published release
(data-prep spec §6), on one screen.

*Problems* (exit status 1) are what breaks or corrupts a run: a missing or malformed file, a record without a field
or with a field of the wrong type, a label value outside {0.3, 0.6, 0.9, 1}, inconsistent vocabulary files, missing
or unreadable feature files, features of the wrong shape, non-finite or all-zero. *Deviations* are differences from
the published release that a smaller or synthetic tree has on purpose (counts, vocabulary sha256, feature dtype and
size); they are listed, and are problems too with ``--strict``.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

from ..formats import ARRAY, INDEX, PACKED
from .raw import PrepareError, file_digest
from .vocab import SHA256, SIZES, relative_paths

PUBLISHED = {
    "vqa": {"karpathy_train": 605_102, "karpathy_val": 26_729, "karpathy_test": 26_280},
    "gqa": {"train": 943_000, "valid": 132_062, "testdev": 12_578},
    "nlvr": {"train": 86_373, "valid": 6_982, "test": 6_967},
    "caption": {"train": 113_287, "val": 5_000, "test": 5_000},
}
TOPK_PUBLISHED = {True: 24_722, False: 1_558}
VQA_SCORES = {0.3, 0.6, 0.9, 1}
COCO_IMG_ID = re.compile(r"COCO_(train|val)2014_\d{12}$")
FIELDS = {
    "vqa": {"answer_type": str, "img_id": str, "label": dict, "question_id": int, "question_type": str, "sent": str},
    "gqa": {"question_id": str, "img_id": str, "sent": str},
    "nlvr": {"identifier": str, "img0": str, "img1": str, "label": int, "sent": str, "uid": str},
}
GRID, FEAT_DIM = 49, 2048
SHOWN = 12


class Report:
    """Rows of counts, problems and deviations, printed as one screen."""

    def __init__(self, root: Path):
        self.root = root
        self.rows: dict[str, list[str]] = {}
        self.problems: list[str] = []
        self.deviations: list[str] = []
        self.differ: list[str] = []
        self.optional: set[str] = set()  # GQA submit images: needed only with --testing

    def cell(self, row: str, text: str) -> None:
        self.rows.setdefault(row, []).append(text)

    def count(self, task: str, split: str, n: int, published: int | None = None, same: bool | None = None) -> None:
        """One count of the screen, marked ✓ when it is the published one."""
        published = PUBLISHED.get(task, {}).get(split) if published is None else published
        same = n == published if same is None else same
        mark = "" if published is None else " ✓" if same else f" (published {published:,})"
        self.cell(task, f"{split} {n:,}{mark}")
        if published is not None and not same:
            self.differ.append(f"{task} {split}")

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def load_json(report: Report, path: Path):
    """The parsed file, or None after recording a problem."""
    if not path.is_file():
        report.problems.append(f"missing {report.relative(path)}")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        report.problems.append(f"unreadable {report.relative(path)}: {err}")
        return None


def bad_record(record, fields: dict) -> str | None:
    """Why a record does not fit ``fields`` ({name: type}), or None."""
    if not isinstance(record, dict):
        return "not an object"
    for name, kind in fields.items():
        if name not in record:
            return f"no field '{name}'"
        value = record[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"'{name}' is {type(value).__name__}, expected {kind.__name__}"
    return None


def load_records(report: Report, path: Path, fields: dict) -> list[dict]:
    """A JSON list of records whose schema is checked (the first bad record is a problem); [] when unusable."""
    records = load_json(report, path)
    if records is None:
        return []
    if not isinstance(records, list):
        report.problems.append(f"{report.relative(path)}: expected a JSON list")
        return []
    for index, record in enumerate(records):
        why = bad_record(record, fields)
        if why:
            report.problems.append(f"{report.relative(path)}: entry {index} {why}")
            return []
    return records


def check_vocab(report: Report, task: str) -> set:
    """ans2label / label2ans: consistent (problem), 3129 / 1842 answers with the published sha256 (deviations)."""
    paths = [report.root / relative for relative in relative_paths(task)]
    ans2label, label2ans = (load_json(report, path) for path in paths)
    if not isinstance(ans2label, dict) or not isinstance(label2ans, list):
        if ans2label is not None and label2ans is not None:
            report.problems.append(f"{task} vocabulary: ans2label must be a dict and label2ans a list")
        return set()
    if len(ans2label) != len(label2ans) or any(ans2label.get(a) != i for i, a in enumerate(label2ans)):
        report.problems.append(f"{task} vocabulary: trainval_ans2label.json and trainval_label2ans.json disagree")
    same = all(file_digest(path) == SHA256[rel] for path, rel in zip(paths, relative_paths(task)))
    report.count(task, "vocabulary", len(label2ans), SIZES[task], same)
    return set(ans2label)


def vqa_record_problem(record: dict, split: str, vocab: set, seen: set) -> str | None:
    """What is wrong with one karpathy_* record, or None."""
    label = record["label"]
    if not COCO_IMG_ID.match(record["img_id"]):
        return "img_id is not COCO_{train,val}2014_<12 digits>"
    if not set(label.values()) <= VQA_SCORES:
        return "label score outside {0.3, 0.6, 0.9, 1}"
    if vocab and not set(label) <= vocab:
        return "label answer outside the vocabulary"
    if split == "karpathy_test" and type(record.get("is_topk_optimal")) is not bool:
        return "is_topk_optimal missing or not a bool"
    return "question_id repeated" if record["question_id"] in seen else None


def check_vqa(report: Report) -> dict[str, set]:
    """vqa/karpathy_*.json, the raw annotation files and the vocabulary; returns the COCO images needed."""
    vocab, images, seen = check_vocab(report, "vqa"), set(), set()
    for split in PUBLISHED["vqa"]:
        path = report.root / "vqa" / f"{split}.json"
        records = load_records(report, path, FIELDS["vqa"])
        report.count("vqa", split, len(records))
        for record in records:
            why = vqa_record_problem(record, split, vocab, seen)
            if why:
                report.problems.append(f"{report.relative(path)}: question {record['question_id']}: {why}")
                break
            seen.add(record["question_id"])
            images.add(record["img_id"])
        if split == "karpathy_test" and records:
            check_topk(report, records)
    for subset in ("train2014", "val2014"):
        if not (report.root / "vqa" / f"v2_mscoco_{subset}_annotations.json").is_file():
            report.problems.append(f"missing vqa/v2_mscoco_{subset}_annotations.json")
    return {"COCO": images}


def check_topk(report: Report, records: list[dict]) -> None:
    counts = {flag: sum(r.get("is_topk_optimal") is flag for r in records) for flag in (True, False)}
    if counts != TOPK_PUBLISHED:
        report.deviations.append(f"vqa karpathy_test is_topk_optimal True/False {counts[True]:,}/{counts[False]:,}, "
                                 f"published {TOPK_PUBLISHED[True]:,}/{TOPK_PUBLISHED[False]:,}")


def check_gqa(report: Report) -> dict[str, set]:
    """GQA/{train,valid,testdev}.json (+ submit.json when present) and the vocabulary."""
    vocab, needed, outside = check_vocab(report, "gqa"), {"VG": set(), "GQA": set()}, 0
    splits = [*PUBLISHED["gqa"]] + ["submit"] * (report.root / "GQA" / "submit.json").is_file()
    for split in splits:
        path = report.root / "GQA" / f"{split}.json"
        records = load_records(report, path, FIELDS["gqa"])
        report.count("gqa", split, len(records))
        for record in records:
            label = record.get("label")
            if split != "submit" and (not isinstance(label, dict) or len(label) != 1
                                      or not all(type(v) is float and v == 1.0 for v in label.values())):
                report.problems.append(f"{report.relative(path)}: question {record['question_id']}: label must be "
                                       "{answer: 1.0}")
                break
            outside += split in ("train", "valid") and bool(vocab) and not set(label) <= vocab
            if split == "submit":
                report.optional.add(record["img_id"])
            else:
                needed["VG" if split in ("train", "valid") else "GQA"].add(record["img_id"])
    if outside:
        report.deviations.append(f"gqa: {outside:,} train/valid answers outside the 1842-answer vocabulary")
    return needed


def check_nlvr(report: Report) -> dict[str, set]:
    """nlvr/{train,valid,test}.json."""
    images = set()
    for split in PUBLISHED["nlvr"]:
        path = report.root / "nlvr" / f"{split}.json"
        records = load_records(report, path, FIELDS["nlvr"])
        report.count("nlvr", split, len(records))
        bad = next((r["identifier"] for r in records if r["label"] not in (0, 1)), None)
        if bad is not None:
            report.problems.append(f"{report.relative(path)}: statement {bad}: label must be 0 or 1")
        images.update(img for r in records for img in (r["img0"], r["img1"]))
    return {"nlvr": images}


def check_caption(report: Report) -> dict[str, set]:
    """COCO/dataset_coco.json: known splits, filenames, raw sentences; val and test all val2014."""
    path = report.root / "COCO" / "dataset_coco.json"
    data = load_json(report, path)
    images = data.get("images") if isinstance(data, dict) else None
    if data is not None and not isinstance(images, list):
        report.problems.append(f"{report.relative(path)}: expected {{\"images\": [...]}}")
    counts, stems, not_val2014 = {"train": 0, "val": 0, "test": 0}, set(), 0
    for index, image in enumerate(images or []):
        split = {"restval": "train"}.get(image.get("split"), image.get("split"))
        sentences = image.get("sentences")
        if split not in counts or not isinstance(image.get("filename"), str) or not isinstance(sentences, list) \
                or not all(isinstance(s, dict) and isinstance(s.get("raw"), str) for s in sentences):
            report.problems.append(f"{report.relative(path)}: image {index} needs split, filename and sentences[*].raw")
            break
        counts[split] += 1
        stems.add(image["filename"].split(".")[0])
        not_val2014 += split != "train" and "val2014" not in image["filename"]
    if not_val2014:
        report.deviations.append(f"caption: {not_val2014:,} val/test images are not val2014 images")
    for split, n in counts.items():
        report.count("caption", split, n)
    return {"COCO": stems}


def check_feature_file(path: Path, img_id: str) -> tuple[str | None, str | None]:
    """(problem, deviation) of one h5 file: one group named like the file, ``features`` (49, F) finite, not all
    zero (problems); F = 2048 and float16 (deviations)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if list(f.keys()) != [img_id] or "features" not in f[img_id]:
                return f"{path.name}: expected exactly one group '{img_id}' holding 'features'", None
            feats = f[img_id]["features"][...]
    except OSError as err:
        return f"{path.name}: unreadable ({err})", None
    return check_feature_array(feats, path.name)


def check_feature_array(feats, name: str) -> tuple[str | None, str | None]:
    """(problem, deviation) of one image's features (an h5 file's, or a packed row)."""
    import numpy as np

    if feats.ndim != 2 or feats.shape[0] != GRID:
        return f"{name}: features of shape {feats.shape}, expected ({GRID}, {FEAT_DIM})", None
    if not np.isfinite(feats).all() or not feats.any():
        return f"{name}: features are non-finite or all zero", None
    if feats.shape[1] != FEAT_DIM or feats.dtype != np.float16:
        return None, f"{feats.shape} {feats.dtype}, published ({GRID}, {FEAT_DIM}) float16"
    return None, None


def packed_rows(folder: Path):
    """(array, {id: row}) of ``folder/packed`` (written by prepare pack or prepare archive), or (None, {})."""
    import json

    import numpy as np

    index = folder / PACKED / INDEX
    if not index.is_file():
        return None, {}
    try:
        ids = json.loads(index.read_text())
        return np.load(folder / PACKED / ARRAY, mmap_mode="r"), {k: i for i, k in enumerate(ids)}
    except (OSError, ValueError) as err:
        raise PrepareError(f"unreadable packed features in {folder / 'packed'}: {err}") from None


def check_features(report: Report, folder_name: str, needed: set, sample: int) -> None:
    """Missing feature files (count and the first ids) and a sample of the present ones opened and checked (h5
    files, or the rows of a packed folder)."""
    import numpy as np

    folder = report.root / folder_name / "clip_features" / "data_clip_RN101_att"
    present = {name[:-3] for name in os.listdir(folder) if name.endswith(".h5")} if folder.is_dir() else set()
    array, packed = packed_rows(folder)  # the loaders read a packed row for every id its index lists
    present |= set(packed)
    missing = sorted(needed - present)
    report.cell(f"{folder_name} h5" + (" + packed" if packed else ""),
                f"{len(needed & present):,} of {len(needed):,} needed present, "
                f"{len(missing):,} missing, {len(present - needed):,} unused; {min(sample, len(needed & present))} "
                "opened")
    if missing:
        report.problems.append(f"{folder_name}: {len(missing):,} of {len(needed):,} feature files missing in "
                               f"{report.relative(folder)}, first: {', '.join(missing[:5])}")
    optional = sorted(report.optional - needed - present) if folder_name == "GQA" else []
    if optional:
        report.deviations.append(f"GQA: {len(optional):,} submit.json images have no feature file (needed only "
                                 f"with --testing), first: {', '.join(optional[:5])}")
    picked = random.Random(0).sample(sorted(needed & present), min(sample, len(needed & present)))
    deviations = set()
    for img_id in picked:
        if img_id in packed:
            problem, deviation = check_feature_array(np.asarray(array[packed[img_id]]), f"packed row of {img_id}")
        else:
            problem, deviation = check_feature_file(folder / f"{img_id}.h5", img_id)
        if problem:
            report.problems.append(f"{folder_name}: {problem}")
        if deviation:
            deviations.add(deviation)
    report.deviations += [f"{folder_name} features: {d} (sample of {len(picked)})" for d in sorted(deviations)]


CHECKS = {"vqa": check_vqa, "gqa": check_gqa, "nlvr": check_nlvr, "caption": check_caption}


def print_report(report: Report, strict: bool) -> bool:
    """Print the screen; True when the tree passes."""
    if report.differ:
        report.deviations.insert(0, f"{len(report.differ)} counts (or vocabulary sha256) differ from the published "
                                    "ones (marked above)")
    failing = report.problems + (report.deviations if strict else [])
    print(f"prepare check {report.root}")
    print("\n".join(f"  {row:8s} " + " · ".join(cells) for row, cells in report.rows.items()))
    for title, lines in (("problems", report.problems),
                         ("deviations from the published release" + (" (problems with --strict)" if not strict
                                                                     else ""), report.deviations)):
        if lines:
            print(f"{title} ({len(lines)}):")
            print("\n".join(f"  - {line}" for line in lines[:SHOWN]))
            if len(lines) > SHOWN:
                print(f"  ... and {len(lines) - SHOWN} more")
    print("FAILED" if failing else "OK")
    return not failing


def check_tree(root: Path, tasks: list[str], sample: int = 16, features: bool = True, strict: bool = False) -> int:
    """Check the tasks of the tree at ``root``; exit status 0 when it passes, 1 otherwise."""
    from .raw import PrepareError

    unknown = [task for task in tasks if task not in CHECKS]
    if unknown or not tasks:
        raise PrepareError(f"unknown task(s) {', '.join(unknown) or '(none)'} for --tasks: use {', '.join(CHECKS)}")
    if not root.is_dir():
        raise PrepareError(f"--root folder not found: {root}")
    report, needed = Report(root), {}
    for task in tasks:
        for folder, ids in CHECKS[task](report).items():
            needed.setdefault(folder, set()).update(ids)
    if features:
        for folder, ids in needed.items():
            check_features(report, folder, ids, sample)
    return 0 if print_report(report, strict) else 1
