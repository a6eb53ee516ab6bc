"""The public TVQA / TVC annotations and TV subtitles -> the VALUE layout the video loaders read (docs/video.md).

    python -m vlpet.features.value_convert --raw RAW --out ROOT [--tasks tvqa,tvc] [--tvc-test-from-public]

RAW holds the original files under their original names, anywhere below it (found by name); ROOT is the datasets root
(``ROOT/video/ann/...`` is written). What VALUE's ``download_tv_annotations.sh`` assembled, and from where:

* ``ann/tv_subtitles.jsonl`` <- TVRetrieval ``data/tvqa_preprocessed_subtitles.jsonl`` (``vid_name``, ``sub``: [{text,
  start, end}]), unchanged;
* ``ann/tvqa/tvqa_{train,val,test_public}.jsonl`` <- TVQA's ``tvqa_qa_release.tar.gz``, unchanged;
* ``ann/tvc/tvc_{train,val}_release.jsonl`` <- TVCaption ``data/``, unchanged.

VALUE's merged test files (``tvqa_test_release.jsonl``, ``tvc_test_release.jsonl``: public + private test questions)
were only on VALUE's storage, which is gone. A copy under RAW is used as is. Without one, TVQA's test split is
``test_public`` only, and ``--tvc-test-from-public`` writes ``tvc_test_release.jsonl`` from TVCaption's public test
clips (``tvc_test_public_release.jsonl``, without ``descs``): the public half of VALUE's test set, a named deviation.
How2QA and YC2C cannot be rebuilt (their annotations existed only on VALUE's storage). Every record is checked for
the fields the loaders read; a missing original file or a malformed record is one error line naming it, and nothing
is written then (each output is written to a temporary name and renamed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.layout import DataError
from ..data.video import read_jsonl
from .files import write_atomic

TVR = "https://raw.githubusercontent.com/jayleicn/TVRetrieval/master/data/"
TVC = "https://raw.githubusercontent.com/jayleicn/TVCaption/master/data/"
TVQA = ("TVQA's tvqa_qa_release.tar.gz (http://tvqa.cs.unc.edu/files/, now "
        "https://nlp.cs.unc.edu/data/jielei/tvqa/tvqa_public_html/)")
SUBTITLES = ("tvqa_preprocessed_subtitles.jsonl", "ann/tv_subtitles.jsonl", TVR, ("vid_name", "sub"))
QA_FIELDS = ("a0", "a1", "a2", "a3", "a4", "q", "qid", "show_name", "ts", "vid_name")
CAPTION_FIELDS = ("vid_name", "duration", "ts", "clip_id")
# task -> [(original name, output path under video/, where it comes from, required fields)]
TASK_FILES = {
    "tvqa": [(f"tvqa_{s}.jsonl", f"ann/tvqa/tvqa_{s}.jsonl", TVQA, QA_FIELDS + (() if s == "test_public" else
                                                                              ("answer_idx",)))
             for s in ("train", "val", "test_public")],
    "tvc": [(f"tvc_{s}_release.jsonl", f"ann/tvc/tvc_{s}_release.jsonl", TVC, CAPTION_FIELDS + ("descs",))
            for s in ("train", "val")],
}
OPTIONAL = [("tvqa_test_release.jsonl", "ann/tvqa/tvqa_test_release.jsonl", "tvqa", QA_FIELDS),
            ("tvc_test_release.jsonl", "ann/tvc/tvc_test_release.jsonl", "tvc", CAPTION_FIELDS)]
NESTED = {"descs": ("desc", "desc_id", "type"), "sub": ("text",)}  # list fields the loaders read into
TVC_TEST_PUBLIC = "tvc_test_public_release.jsonl"


def find(raw: Path, name: str) -> Path | None:
    """The first file called ``name`` below ``raw`` (sorted walk), or None."""
    return next(iter(sorted(raw.rglob(name))), None)


def read_records(path: Path, fields: tuple[str, ...]) -> list[dict]:
    """The JSON-lines records of ``path``, each checked for ``fields`` (and the fields of its ``descs``/``sub``
    items); a problem is a one-line ValueError naming the file and the record (1-based, blank lines not counted)."""
    try:
        records = read_jsonl(path, "original file")
    except DataError as err:
        raise ValueError(str(err).splitlines()[0]) from None
    for number, record in enumerate(records, start=1):
        missing = [k for k in fields if k not in record]
        for key, inner in NESTED.items():
            items = record.get(key) if isinstance(record.get(key), list) else []
            missing += [f"{key}[].{k}" for d in items for k in inner if not isinstance(d, dict) or k not in d][:1]
        if missing:
            raise ValueError(f"{path}: record {number} lacks the field(s) {', '.join(missing)}")
    if not records:
        raise ValueError(f"{path} holds no records")
    return records


def plan(raw: Path, tasks: list[str], tvc_test_from_public: bool) -> list[tuple[Path, str, tuple, bool]]:
    """[(original file, output path under video/, fields, drop descs)]; a missing original is one ValueError."""
    wanted = [SUBTITLES] + [entry for task in tasks for entry in TASK_FILES[task]]
    jobs = []
    for name, out, source, fields in wanted:
        path = find(raw, name)
        if path is None:
            raise ValueError(f"missing original file {name} below {raw}: it comes from {source}")
        jobs.append((path, out, fields, False))
    for name, out, task, fields in OPTIONAL:
        path = find(raw, name) if task in tasks else None
        if path is not None:
            jobs.append((path, out, fields, False))
        elif task == "tvc" and tvc_test_from_public:
            public = find(raw, TVC_TEST_PUBLIC)
            if public is None:
                raise ValueError(f"--tvc-test-from-public: missing {TVC_TEST_PUBLIC} below {raw} (from {TVC})")
            jobs.append((public, out, fields, True))
    return jobs


def convert(raw: str | Path, root: str | Path, tasks: list[str], tvc_test_from_public: bool = False) -> dict:
    """Check every input, then write the VALUE files under ``<root>/video``; returns {output: record count} and the
    VALUE files that could not be produced."""
    raw, video = Path(raw), Path(root) / "video"
    if not raw.is_dir():
        raise ValueError(f"--raw folder not found: {raw}")
    jobs = [(out, [{k: v for k, v in r.items() if not (drop and k == "descs")} for r in read_records(path, fields)])
            for path, out, fields, drop in plan(raw, tasks, tvc_test_from_public)]
    for out, records in jobs:
        target = video / out
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        write_atomic(target, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    written = {out: len(records) for out, records in jobs}
    absent = [out for _, out, task, _ in OPTIONAL if task in tasks and out not in written]
    return {"written": written, "not_rebuilt": absent + ["ann/how2qa/*, ann/how2_subtitles.jsonl (gone with VALUE)",
                                                         "ann/yc2c/*, ann/yc2_subtitles.jsonl (gone with VALUE)"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlpet.features.value_convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", required=True, help="folder holding the original files (found by name)")
    parser.add_argument("--out", required=True, help="datasets root; writes <out>/video/ann/...")
    parser.add_argument("--tasks", default="tvqa,tvc", help="comma list of tvqa, tvc (default both)")
    parser.add_argument("--tvc-test-from-public", action="store_true",
                        help="write tvc_test_release.jsonl from TVCaption's public test clips (VALUE's merged file "
                             "is gone)")
    args = parser.parse_args(argv)
    try:
        tasks = [t for t in args.tasks.split(",") if t]
        unknown = sorted(set(tasks) - set(TASK_FILES))
        if unknown or not tasks:
            raise ValueError(f"--tasks takes a comma list of {', '.join(TASK_FILES)}; got {args.tasks!r}")
        print(json.dumps(convert(args.raw, args.out, tasks, args.tvc_test_from_public)))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
