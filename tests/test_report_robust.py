"""``report`` on malformed run folders (issue 22 item 5): each unreadable folder is skipped with one warning that
names its file, the rest are reported; repeated seeds are counted once and flagged (item 6). Synthetic folders,
no training: fast."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vlpet.__main__ import main as cli

CONFIG = {"model": {"backbone": "facebook/bart-base"}, "pet": {"method": "vl-pet", "gate": "large"},
          "args": {"seed": 42, "tasks": "gqa,nlvr"}}


def good_run(folder: Path, seed: int = 42, scores: dict | None = None, config: dict | None = None) -> Path:
    """A finished run folder as the trainer writes it: summary.json, config.json, metrics.jsonl."""
    folder.mkdir(parents=True)
    scores = scores or {"gqa": 50.0, "nlvr": 60.0 + seed % 7}
    config = config or {**CONFIG, "args": {**CONFIG["args"], "seed": seed}}
    records = [{"epoch": 0, "val": {t: v - 1 for t, v in scores.items()}}, {"epoch": 1, "val": scores},
               {"test": scores, "epoch": 1}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.json").write_text(json.dumps(config))
    summary = {"status": "finished", "kind": "train", "seed": seed, "backbone": "BART-base", "family": "bart",
               "config": config, "params": {"percent": 4.16}, "split": "test", "scores": scores, "from_val": []}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


BAD_SUMMARIES = {
    "list": "[1, 2, 3]",
    "config_null": '{"config": null}',
    "no_status": '{"config": {}}',
    "no_backbone": '{"config": {}, "status": "finished"}',
    "scores_text": None,  # filled below: valid summary whose scores are a string
    "not_json": "{",
    "binary": b"\xe4\x00\xff\x10garbage",
    "seed_list": None,
    "bad_status": None,
}


def bad_folder(root: Path, name: str) -> tuple[Path, Path]:
    """(run folder, the file that is wrong in it)."""
    folder = good_run(root / name, seed=7)
    summary = json.loads((folder / "summary.json").read_text())
    content = BAD_SUMMARIES[name]
    if name == "scores_text":
        content = json.dumps({**summary, "scores": "high"})
    elif name == "seed_list":
        content = json.dumps({**summary, "seed": [1]})
    elif name == "bad_status":
        content = json.dumps({**summary, "status": {"x": 1}})
    path = folder / "summary.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder, path


@pytest.mark.parametrize("name", list(BAD_SUMMARIES))
def test_a_malformed_summary_is_skipped_with_a_warning_naming_it(tmp_path, capsys, name):
    good = good_run(tmp_path / "snap" / "good")
    _, path = bad_folder(tmp_path / "snap", name)
    assert cli(["report", str(tmp_path / "snap")]) == 0
    out, err = capsys.readouterr()
    assert str(good) in out and "VL-PET-large" in out  # the rest is reported
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipped run folder") and str(path) in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"\xe4" + os.urandom(200), b'{"epoch": 0}\n[1]\n{"epoch": 1}\n',
                                     b'{"epoch": "zero", "val": {}}\n{}\n', b'{"epoch": 0, "val": {"gqa": "x"}}\n{}\n',
                                     b'{"epoch": 0, "val": [1]}\n{}\n', b'not json\n{"epoch": 1}\n'])
def test_a_malformed_metrics_file_is_skipped_with_a_warning_naming_it(tmp_path, capsys, content):
    """An older run folder (config.json + metrics.jsonl, no summary) with a binary or wrongly shaped metrics file."""
    good_run(tmp_path / "snap" / "good")
    folder = good_run(tmp_path / "snap" / "older", seed=9)
    (folder / "summary.json").unlink()
    (folder / "metrics.jsonl").write_bytes(content)
    assert cli(["report", str(tmp_path / "snap"), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["seeds"] for line in out.splitlines()] == [[42]]
    assert err.count("\n") == 1 and f"skipped run folder {folder}" in err and str(folder / "metrics.jsonl") in err


def test_malformed_config_of_an_older_run_is_skipped(tmp_path, capsys):
    good_run(tmp_path / "snap" / "good")
    for name, text in {"list": "[]", "pet": '{"pet": [1], "args": {"seed": 1}}', "args": '{"args": 5}'}.items():
        folder = good_run(tmp_path / "snap" / name, seed=3)
        (folder / "summary.json").unlink()
        (folder / "config.json").write_text(text)
    assert cli(["report", str(tmp_path / "snap"), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) >= 2 and "Traceback" not in err
    # the "args": 5 folder is readable (no seed known), the other two are skipped by name
    assert f"{tmp_path / 'snap' / 'list'}" in err and f"{tmp_path / 'snap' / 'pet'}" in err


def test_only_unreadable_folders_is_one_error(tmp_path, capsys):
    bad_folder(tmp_path / "snap", "list")
    assert cli(["report", str(tmp_path / "snap")]) == 2
    err = capsys.readouterr().err
    assert "none of the 1 run folder(s)" in err and "warning: skipped" in err


def test_a_repeated_seed_counts_once_and_is_flagged(tmp_path, capsys):
    """Two runs of seed 42 (a rerun) and one of seed 43: 2 seeds, the repeated one averaged and named."""
    good_run(tmp_path / "snap" / "a", seed=42, scores={"gqa": 50.0, "nlvr": 60.0})
    good_run(tmp_path / "snap" / "b", seed=42, scores={"gqa": 52.0, "nlvr": 60.0})
    good_run(tmp_path / "snap" / "c", seed=43, scores={"gqa": 41.0, "nlvr": 70.0})
    assert cli(["report", str(tmp_path / "snap"), "--format", "json"]) == 0
    group = json.loads(capsys.readouterr().out)
    assert group["seeds"] == [42, 43] and group["repeated_seeds"] == {"42": 2} and len(group["runs"]) == 3
    assert group["test"]["gqa"] == pytest.approx({"mean": 46.0, "std": pytest.approx(7.0710678), "n": 2})
    assert cli(["report", str(tmp_path / "snap")]) == 0
    md = capsys.readouterr().out
    assert "| 2 ⚠ |" in md and "seed 42 ran 2 times" in md and "seeds 42 (×2 runs), 43" in md


def test_each_configuration_gets_its_own_colour_and_marker(tmp_path, capsys):
    """Two configurations of one method (different adapter sizes): distinct styles in every figure."""
    pytest.importorskip("matplotlib")
    from vlpet.report.groups import group_runs
    from vlpet.report.plots import group_styles
    from vlpet.report.runs import find_runs, read_run

    for i, dim in enumerate((96, 48)):
        config = {**CONFIG, "pet": {**CONFIG["pet"], "adapter_dim": dim}}
        good_run(tmp_path / "snap" / f"d{dim}", seed=42, config=config)
    groups = group_runs([read_run(p) for p in find_runs([str(tmp_path / "snap")])])
    assert len(groups) == 2 and groups[0].method == groups[1].method
    a, b = (group_styles(groups)[g.key] for g in groups)
    assert a["color"] != b["color"] and a["marker"] != b["marker"]
    assert cli(["report", str(tmp_path / "snap"), "--plot", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "curve_gqa.png").is_file()


ODD_VALUES = [None, [], {}, "x", 1.5, True, -1, [1, 2], {"a": {"b": 1}}]


def test_any_odd_value_in_any_field_is_reported_or_skipped_by_name(tmp_path, capsys):
    """Each top-level field of summary.json, and of a metrics record, replaced by each odd JSON value: the report
    never raises; the folder is either read or skipped with one warning naming it."""
    good_run(tmp_path / "snap" / "good")
    folder = good_run(tmp_path / "snap" / "odd", seed=5)
    summary = json.loads((folder / "summary.json").read_text())
    records = (folder / "metrics.jsonl").read_text()
    cases = [("summary.json", {**summary, key: value}) for key in summary for value in ODD_VALUES]
    cases += [("summary.json", {**summary, "config": {**summary["config"], key: value}})
              for key in ("pet", "model", "args") for value in ODD_VALUES]
    first = json.loads(records.splitlines()[0])
    cases += [("metrics.jsonl", {**first, key: value}) for key in first for value in ODD_VALUES]
    for i, (name, content) in enumerate(cases):
        if name == "summary.json":
            (folder / "summary.json").write_text(json.dumps(content))
            (folder / "metrics.jsonl").write_text(records)
        else:
            (folder / "summary.json").unlink(missing_ok=True)
            (folder / "metrics.jsonl").write_text(json.dumps(content) + "\n" + "\n".join(records.splitlines()[1:]))
        fmt = ("md", "json", "csv", "latex")[i % 4]  # each format sees a quarter of the cases
        assert cli(["report", str(tmp_path / "snap"), "--format", fmt]) == 0, (name, content)
        lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
        assert not lines or (len(lines) == 1 and f"skipped run folder {folder}" in lines[0]), (name, content)
