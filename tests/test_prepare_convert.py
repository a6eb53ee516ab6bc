"""``python -m vlpet prepare`` on original-format samples: the visible sample (tests/fixtures/prepare-visible, compared
as its README says), the recipes' quirks on hand-made originals, and every error path of the converters."""

import json
import shutil
from pathlib import Path

import pytest

from vlpet.__main__ import main
from vlpet.prepare.raw import file_digest
from vlpet.prepare.vocab import SHA256

SAMPLE = Path(__file__).parent / "fixtures" / "prepare-visible"
RECORD_KEYS = {"vqa": "question_id", "GQA": "question_id", "nlvr": "identifier"}
RECORD_FIELDS = {"vqa": ("answer_type", "img_id", "question_id", "question_type", "sent"),
                 "GQA": ("question_id", "img_id", "sent"), "nlvr": ("img0", "img1", "label", "sent", "uid")}
COPIED = {  # output: its original in raw/
    "COCO/dataset_coco.json": "caption_datasets/dataset_coco.json",
    "vqa/v2_mscoco_train2014_annotations.json": "VQA/v2_Annotations_Train_mscoco/v2_mscoco_train2014_annotations.json",
    "vqa/v2_mscoco_val2014_annotations.json": "VQA/v2_Annotations_Val_mscoco/v2_mscoco_val2014_annotations.json",
}


def load(path):
    return json.loads(Path(path).read_text())


def prepare(*args):
    return main(["prepare", *map(str, args)])


def keyed(records, key):
    out = {r[key]: r for r in records}
    assert len(out) == len(records), "duplicate records"
    return out


def assert_same_records(got_list, want_list, folder):
    key = RECORD_KEYS[folder]
    got, want = keyed(got_list, key), keyed(want_list, key)
    assert set(got) == set(want)
    for k, rec in want.items():
        for name in RECORD_FIELDS[folder]:
            assert got[k][name] == rec[name] and type(got[k][name]) is type(rec[name]), (k, name)
        if "label" in rec and folder != "nlvr":
            assert set(got[k]["label"]) == set(rec["label"]), k
            assert all(abs(got[k]["label"][a] - s) < 1e-6 for a, s in rec["label"].items()), k
        if folder == "GQA" and "label" not in rec:
            assert "label" not in got[k]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    assert prepare("all", "--raw", SAMPLE / "raw", "--out", out) == 0
    return out


def test_visible_sample_reproduced(prepared):
    expected = SAMPLE / "expected"
    for path in sorted(expected.rglob("*.json")):
        relative = path.relative_to(expected)
        assert_same_records(load(prepared / relative), load(path), relative.parts[0])
    for relative, original in COPIED.items():
        assert load(prepared / relative) == load(SAMPLE / "raw" / original)
    for relative, digest in SHA256.items():
        assert file_digest(prepared / relative) == digest
    written = {p.relative_to(prepared).as_posix() for p in prepared.rglob("*") if p.is_file()}
    assert len(written) == 17 and not [p for p in written if ".tmp" in p]


def test_karpathy_test_records_carry_a_bool_topk_flag(prepared):
    assert all(type(r["is_topk_optimal"]) is bool for r in load(prepared / "vqa/karpathy_test.json"))


def test_published_label_examples(prepared):
    records = {r["question_id"]: r for split in ("train", "val", "test")
               for r in load(prepared / f"vqa/karpathy_{split}.json")}
    assert records[222016001]["label"] == {"2": 0.9, "3": 0.9}
    assert records[384029000]["label"] == {"riding": 1, "surfing": 0.9}
    assert type(records[384029000]["label"]["riding"]) is int
    assert records[99054002]["label"] == {"": 0.3, "no": 0.3, "yes": 1}
    assert records[386164003]["label"] == {}


# ---- hand-made originals: the recipes in general -------------------------------------------------------------------

def write(path, obj, lines=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(o) for o in obj) + "\n" if lines else json.dumps(obj))


def vqa_raw(raw, answers=("yes",) * 10, image_id=7, n=1):
    images = [{"filepath": "val2014", "filename": f"COCO_val2014_{image_id:012d}.jpg", "split": split,
               "sentences": [{"raw": "a cat. "}], "cocoid": image_id} for split in ("restval",)]
    write(raw / "k" / "dataset_coco.json", {"images": images, "dataset": "coco"})
    for subset in ("train2014", "val2014"):
        anns = [] if subset == "train2014" else [{
            "question_type": "is the", "multiple_choice_answer": answers[0], "image_id": image_id,
            "answer_type": "yes/no", "question_id": image_id * 1000 + k,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]}
            for k in range(n)]
        qs = [{"image_id": a["image_id"], "question": "is it?", "question_id": a["question_id"]} for a in anns]
        write(raw / "q" / f"v2_OpenEnded_mscoco_{subset}_questions.json", {"questions": qs})
        write(raw / "a" / f"v2_mscoco_{subset}_annotations.json", {"annotations": anns})


def test_restval_goes_to_train_and_raw_answers_are_not_normalised(tmp_path):
    vqa_raw(tmp_path / "raw", answers=("Yes",) * 5 + ("yes",) * 2 + ("two",) * 3)
    assert prepare("vqa", "--raw", tmp_path / "raw", "--out", tmp_path / "out") == 0
    (record,) = load(tmp_path / "out/vqa/karpathy_train.json")
    assert record["img_id"] == "COCO_val2014_000000000007" and record["label"] == {"yes": 0.6}
    assert load(tmp_path / "out/vqa/karpathy_val.json") == load(tmp_path / "out/vqa/karpathy_test.json") == []


def test_answer_set_is_rederived_from_normalised_choices(tmp_path, capsys):
    for n, found in ((9, "1, of which 1"), (8, "0, of which 0")):  # filter_answers(..., 9) on "Two," -> "2"
        vqa_raw(tmp_path / f"raw{n}", answers=("Two,",) * 10, n=n)
        assert prepare("vqa", "--raw", tmp_path / f"raw{n}", "--out", tmp_path / "out") == 0
        assert f"answers chosen by >= 9 questions: {found} in the 3,129-answer" in capsys.readouterr().out


def test_with_answers_keeps_the_raw_answers(tmp_path):
    vqa_raw(tmp_path / "raw")
    assert prepare("vqa", "--raw", tmp_path / "raw", "--out", tmp_path / "out", "--with-answers") == 0
    (record,) = load(tmp_path / "out/vqa/karpathy_train.json")
    assert [a["answer"] for a in record["answers"]] == ["yes"] * 10


def test_topk_rules_differ_where_the_spec_says(tmp_path):
    from vlpet.prepare.vqa import is_topk_optimal, preprocess_answer

    vocab = {"2": 0, "yes": 1}
    ann = {"multiple_choice_answer": "two", "answers": [{"answer": "two"}] * 6 + [{"answer": "2"}] * 4}
    label = {"2": 1}
    assert preprocess_answer("Two,") == "2"
    assert is_topk_optimal("answer-in-vocab", ann, label, vocab)
    assert is_topk_optimal("labelled", ann, {}, vocab) is False
    ann = {"multiple_choice_answer": "x", "answers": [{"answer": "x"}] * 7 + [{"answer": "2"}] * 3}
    assert not is_topk_optimal("best-score", ann, {"2": 0.9}, vocab)


def test_gqa_keys_stay_strings_and_nlvr_generic_names_are_told_apart(tmp_path):
    raw = tmp_path / "raw"
    for name in ("train", "val", "testdev"):
        write(raw / "gqa" / f"{name}_balanced_questions.json",
              {"0042": {"question": "q?", "imageId": "n1", "answer": "no"}})
    write(raw / "other" / "train.json", [{"not": "nlvr"}])  # a processed file of the same generic name
    write(raw / "nlvr/train" / "train.json", [{"identifier": "1-0", "sentence": "s", "label": "true"}], lines=True)
    for name in ("train", "dev", "test1"):
        write(raw / "nlvr2" / f"{name}.json", [{"identifier": f"{name}-3-1-2", "sentence": "s.", "label": "True"}],
              lines=True)
    assert prepare("gqa", "--raw", raw, "--out", tmp_path / "out") == 0
    assert prepare("nlvr", "--raw", raw, "--out", tmp_path / "out") == 0
    assert load(tmp_path / "out/GQA/train.json") == [{"img_id": "n1", "label": {"no": 1.0}, "question_id": "0042",
                                                      "sent": "q?"}]
    assert not (tmp_path / "out/GQA/submit.json").exists()
    assert load(tmp_path / "out/nlvr/valid.json")[0] == {"identifier": "dev-3-1-2", "img0": "dev-3-1-img0",
                                                         "img1": "dev-3-1-img1", "label": 1, "sent": "s.",
                                                         "uid": "nlvr2_valid_0"}


# ---- error paths ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task, name, source", [
    ("vqa", "v2_mscoco_val2014_annotations.json", "v2_Annotations_Val_mscoco.zip"),
    ("caption", "dataset_coco.json", "Kaggle"),
    ("gqa", "testdev_balanced_questions.json", "questions1.2.zip"),
    ("nlvr", "test1.json", "lil-lab/nlvr"),
])
def test_missing_original_is_one_line_and_nothing_is_written(tmp_path, capsys, task, name, source):
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    next(raw.rglob(name)).unlink()
    out = tmp_path / "out"
    (out / "vqa").mkdir(parents=True)
    (out / "vqa" / "karpathy_train.json").write_text("old")
    assert prepare("all" if task == "vqa" else task, "--raw", raw, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and source in err and "Traceback" not in err
    assert [p.relative_to(out).as_posix() for p in out.rglob("*")] == ["vqa", "vqa/karpathy_train.json"]
    assert (out / "vqa" / "karpathy_train.json").read_text() == "old"


def test_malformed_original_and_uncovered_image_are_errors(tmp_path, capsys):
    vqa_raw(tmp_path / "raw")
    (tmp_path / "raw/a/v2_mscoco_val2014_annotations.json").write_text("{broken")
    assert prepare("vqa", "--raw", tmp_path / "raw", "--out", tmp_path / "out") == 2
    assert "cannot read original file" in capsys.readouterr().err
    vqa_raw(tmp_path / "raw2", image_id=8)
    karpathy = tmp_path / "raw2/k/dataset_coco.json"
    data = load(karpathy)
    data["images"][0]["filename"] = "COCO_val2014_000000000009.jpg"
    write(karpathy, data)
    assert prepare("vqa", "--raw", tmp_path / "raw2", "--out", tmp_path / "out") == 2
    assert "is not in" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_different_copies_of_an_original_are_an_error(tmp_path, capsys):
    vqa_raw(tmp_path / "raw")
    shutil.copy(tmp_path / "raw/k/dataset_coco.json", tmp_path / "raw/dataset_coco.json")
    assert prepare("caption", "--raw", tmp_path / "raw", "--out", tmp_path / "out") == 0  # the same bytes: fine
    (tmp_path / "raw/dataset_coco.json").write_text(json.dumps({"images": []}))
    assert prepare("caption", "--raw", tmp_path / "raw", "--out", tmp_path / "out") == 2
    assert "keep one" in capsys.readouterr().err


def test_output_tree_inside_raw_is_not_taken_for_originals(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    for _ in range(2):  # the second run would find a second dataset_coco.json (and GQA/train.json) in raw/out
        assert prepare("caption", "--raw", raw, "--out", raw / "out") == 0
        assert prepare("nlvr", "--raw", raw, "--out", raw / "out") == 0


def test_unwritable_output_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("a file, not a folder")
    assert prepare("nlvr", "--raw", SAMPLE / "raw", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (tmp_path / "out").read_text() == "a file, not a folder"


def test_missing_raw_folder(tmp_path, capsys):
    assert prepare("gqa", "--raw", tmp_path / "nope", "--out", tmp_path / "out") == 2
    assert "--raw folder not found" in capsys.readouterr().err


# ---- Karpathy split fallback (recipe B) ----------------------------------------------------------------------------

def fallback_raw(tmp_path):
    """The sample's originals without dataset_coco.json, plus BLIP's split files and COCO caption files made from it."""
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    karpathy = load(raw / "caption_datasets/dataset_coco.json")
    (raw / "caption_datasets/dataset_coco.json").unlink()
    for split in ("val", "test"):
        write(raw / "blip" / f"coco_karpathy_{split}.json",
              [{"image": f"val2014/{i['filename']}", "caption": [s["raw"] for s in i["sentences"]]}
               for i in karpathy["images"] if i["split"] == split])
    for subset in ("train2014", "val2014"):
        images = [i for i in karpathy["images"] if subset in i["filename"]]
        write(raw / "annotations" / f"captions_{subset}.json", {
            "images": [{"id": i["cocoid"], "file_name": i["filename"]} for i in images],
            "annotations": [{"image_id": i["cocoid"], "id": 10 * i["cocoid"] + k, "caption": s["raw"]}
                            for i in images for k, s in enumerate(i["sentences"])]})
    return raw


def test_karpathy_fallback_gives_the_same_splits_and_records(tmp_path, prepared, capsys):
    raw = fallback_raw(tmp_path)
    assert prepare("caption", "--raw", raw, "--out", tmp_path / "out") == 2
    assert "--karpathy-fallback" in capsys.readouterr().err
    assert prepare("all", "--raw", raw, "--out", tmp_path / "out", "--karpathy-fallback") == 0
    for split in ("train", "val", "test"):
        relative = f"vqa/karpathy_{split}.json"
        assert_same_records(load(tmp_path / "out" / relative), load(SAMPLE / "expected" / relative), "vqa")
    rebuilt = load(tmp_path / "out/COCO/dataset_coco.json")["images"]
    original = load(SAMPLE / "raw/caption_datasets/dataset_coco.json")["images"]
    shape = lambda images: sorted(({"restval": "train"}.get(i["split"], i["split"]), i["filename"],  # noqa: E731
                                   tuple(s["raw"] for s in i["sentences"])) for i in images)
    assert shape(rebuilt) == shape(original)


def test_karpathy_fallback_needs_val2014_images(tmp_path, capsys):
    raw = fallback_raw(tmp_path)
    blip = raw / "blip/coco_karpathy_test.json"
    write(blip, load(blip) + [{"image": "train2014/COCO_train2014_000000000001.jpg", "caption": []}])
    assert prepare("caption", "--raw", raw, "--out", tmp_path / "out", "--karpathy-fallback") == 2
    assert "must be val2014 images" in capsys.readouterr().err


def test_bench_prepare_prints_one_json_line():
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "bench" / "prepare.py"
    proc = subprocess.run([sys.executable, str(script), "--questions", "300"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert {"vqa", "gqa", "nlvr", "peak_rss_mb"} <= set(out) and out["vqa"]["records_per_s"] > 0


def test_failure_after_some_outputs_are_staged_leaves_the_tree_as_it_was(tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    next(raw.rglob("testdev_balanced_questions.json")).write_text("[1, 2")  # found, but GQA comes after VQA
    assert prepare("all", "--raw", raw, "--out", tmp_path / "out") == 2
    assert "testdev_balanced_questions.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_line_process_reports_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vlpet", "prepare", "nlvr", "--raw", str(tmp_path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: missing original file train.json") and proc.stderr.count("\n") == 1
