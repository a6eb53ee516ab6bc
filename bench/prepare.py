"""Annotation-conversion benchmark: ``prepare {vqa,gqa,nlvr}`` on generated original-format files of a given size,
extrapolated to the published sizes (658,111 VQA questions, 1,087,640 GQA questions, 100,322 NLVR2 lines).

Usage: ``python bench/prepare.py [--questions 60000]``. Prints one JSON line: seconds and records/s per source, the
full-size estimate, and the process's peak RSS (which grows with the size: the originals are parsed whole).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vlpet.commands.prepare import main as prepare  # noqa: E402

FULL = {"vqa": 658_111, "gqa": 1_087_640, "nlvr": 100_322}
ANSWERS = ("yes", "no", "2", "red", "Yes", "two", "dont know", "tennis")


def write(path: Path, obj, lines: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(map(json.dumps, obj)) + "\n" if lines else json.dumps(obj))


def write_vqa(raw: Path, n: int) -> None:
    """Karpathy file, questions and annotations: 5 questions per image, half train2014, half val2014."""
    images = []
    for subset in ("train2014", "val2014"):
        anns, qs = [], []
        for k in range(n // 2):
            image_id, qid = k // 5 + 1, (k // 5 + 1) * 1000 + k % 5
            answers = [ANSWERS[(k + j) % len(ANSWERS)] for j in range(10)]
            anns.append({"question_type": "what", "multiple_choice_answer": answers[0], "image_id": image_id,
                         "answer_type": "other", "question_id": qid, "answers": [
                             {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                             for j, a in enumerate(answers)]})
            qs.append({"image_id": image_id, "question": f"what is {k}?", "question_id": qid})
            if k % 5 == 0:
                split = ("train", "restval", "val", "test")[image_id % 4] if subset == "val2014" else "train"
                images.append({"filename": f"COCO_{subset}_{image_id:012d}.jpg", "split": split,
                               "sentences": [{"raw": "a picture."}] * 5})
        write(raw / f"v2_mscoco_{subset}_annotations.json", {"annotations": anns})
        write(raw / f"v2_OpenEnded_mscoco_{subset}_questions.json", {"questions": qs})
    write(raw / "dataset_coco.json", {"images": images, "dataset": "coco"})


def write_gqa(raw: Path, n: int) -> None:
    for name in ("train", "val", "testdev"):
        write(raw / f"{name}_balanced_questions.json",
              {f"{k:08d}": {"question": f"is it {k}?", "imageId": str(k // 10), "answer": "yes",
                            "fullAnswer": "Yes, it is.", "types": {}, "semantic": []} for k in range(n // 3)})


def write_nlvr(raw: Path, n: int) -> None:
    for name in ("train", "dev", "test1"):
        write(raw / "nlvr2" / f"{name}.json", [{"identifier": f"{name}-{k // 4}-{k % 2}-{k % 4}", "sentence": "s.",
                                                "label": "True" if k % 2 else "False", "left_url": "u",
                                                "right_url": "u", "writer": "1", "synset": "x", "query": "q"}
                                               for k in range(n // 3)], lines=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=60_000, help="records per source (default 60000)")
    args = parser.parse_args()
    result = {"records": args.questions}
    with tempfile.TemporaryDirectory() as tmp:
        for source, writer in (("vqa", write_vqa), ("gqa", write_gqa), ("nlvr", write_nlvr)):
            raw = Path(tmp) / source
            writer(raw, args.questions)
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                assert prepare([source, "--raw", str(raw), "--out", str(Path(tmp) / "out")]) == 0
            seconds = time.perf_counter() - start
            result[source] = {"s": round(seconds, 2), "records_per_s": round(args.questions / seconds),
                              "full_size_s_estimate": round(FULL[source] * seconds / args.questions)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
