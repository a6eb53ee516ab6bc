"""``python -m vlpet report`` on real tiny trainer runs: two configurations × three seeds and an interrupted run,
made through the CLI; grouping, means and sample stds against each run's own final scores, the four formats, the
paper's rows, the plots, determinism, and an older run folder (no summary.json) read the same way."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest

from test_trainer import argv, data  # noqa: F401,F811  (the trainer tests' synthetic data and official flags)
from vlpet.__main__ import main as cli
from vlpet.report.groups import mean_std

SEEDS = (42, 43, 9595)
GATES = ("large", "small")


def train(data: Path, out: Path, gate: str, seed: int) -> int:
    return cli(["train", *argv(data, out, gate=gate, extra=f"--tasks gqa,nlvr --seed {seed}")])


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):  # noqa: F811
    """snap/<gate>/seed<S> for both gates and three seeds, plus snap/cut: interrupted at its first step."""
    from vlpet.train import saver

    snap = tmp_path_factory.mktemp("snap")
    for gate in GATES:
        for seed in SEEDS:
            assert train(data, snap / gate / f"seed{seed}", gate, seed) == 0
    original = saver.StepSaver.on_step

    def interrupt(self, done, step):
        original(self, done, step)
        raise KeyboardInterrupt

    saver.StepSaver.on_step = interrupt
    try:
        assert train(data, snap / "cut", "large", 42) == 130
    finally:
        saver.StepSaver.on_step = original
    return snap


def own_scores(run: Path) -> dict[str, float]:
    """The run's final scores straight from its metrics.jsonl: test, and GQA from the last validation (test-dev)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"gqa": [r for r in records if "val" in r][-1]["val"]["gqa"], **records[-1]["test"]}


def report(capsys, *args: str) -> str:
    assert cli(["report", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_groups_over_seeds_with_sample_stds(runs, capsys):
    rows = [json.loads(line) for line in report(capsys, runs, "--format", "json").splitlines()]
    groups = {row["method"]: row for row in rows if not row.get("unfinished")}
    assert set(groups) == {"VL-PET-large", "VL-PET-small"}
    for gate in GATES:
        group = groups[f"VL-PET-{gate}"]
        folders = [runs / gate / f"seed{s}" for s in SEEDS]
        assert group["seeds"] == list(SEEDS) and group["runs"] == [str(f) for f in folders]
        scores = [own_scores(f) for f in folders]
        for task in ("gqa", "nlvr"):
            values = [s[task] for s in scores]
            assert group["test"][task] == pytest.approx({"mean": statistics.fmean(values),
                                                         "std": statistics.stdev(values), "n": 3})
        avgs = [statistics.fmean(s.values()) for s in scores]
        assert group["avg"]["mean"] == pytest.approx(statistics.fmean(avgs))
        assert group["avg"]["std"] == pytest.approx(statistics.stdev(avgs))
        line = (folders[0] / "log.txt").read_text().splitlines()[0]  # Trainable param percentage: x% (a/b)
        trainable, total = map(int, line.split("(")[1].rstrip(")").split("/"))
        assert group["params_percent"] == pytest.approx(100 * trainable / total)
        assert group["backbone"] == "tiny-bart" and group["from_val"] == ["gqa"]
    unfinished = [row for row in rows if row.get("unfinished")]
    assert [(u["run"], u["status"]) for u in unfinished] == [(str(runs / "cut"), "interrupted")]
    summary = json.loads((runs / "cut" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "KeyboardInterrupt" in summary["error"]


def test_markdown_is_deterministic_and_lists_the_unfinished_run(runs, capsys):
    first = report(capsys, runs)
    assert report(capsys, runs) == first
    rows = {g["method"]: g for g in map(json.loads, report(capsys, runs, "--format", "json").splitlines())
            if not g.get("unfinished")}
    large = rows["VL-PET-large"]
    cells = [f"{large['test'][t]['mean']:.2f} ±{large['test'][t]['std']:.2f}" for t in ("gqa", "nlvr")]
    assert f"| VL-PET-large | tiny-bart | {large['params_percent']:.2f} | 3 | {' | '.join(cells)} |" in first
    unfinished = first.split("## Unfinished runs (not averaged)")[1]
    assert str(runs / "cut") in unfinished and "interrupted" in unfinished
    assert str(runs / "cut") not in first.split("## Unfinished")[0]  # never averaged in


def test_csv_latex_and_the_paper_rows(runs, capsys):
    table = list(csv.DictReader(io.StringIO(report(capsys, runs, "--format", "csv", "--paper", "table2"))))
    assert [r["name"] for r in table] == ["VL-PET-small", "VL-PET-large"]  # the paper's row order
    for row in table:
        assert row["n_seeds"] == "3" and row["seeds"] == "42 43 9595" and row["split"] == "test"
        assert float(row["paper_gqa_value"]) == {"VL-PET-large": 55.11, "VL-PET-small": 54.03}[row["name"]]
        assert float(row["paper_gqa_diff"]) == pytest.approx(float(row["gqa_mean"]) - float(row["paper_gqa_value"]),
                                                             abs=1e-3)
        within = abs(float(row["paper_gqa_diff"])) <= 2 * float(row["gqa_std"])
        assert row["paper_gqa_within_2std"] == str(within).lower()
        assert row["paper_avg_value"] == ""  # two of the paper's four tasks: no Avg comparison
    tex = report(capsys, runs, "--format", "latex", "--paper", "table2")
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "NLVR$^2$" in tex and r"\textit{paper}" in tex
    assert "$55.11$" in tex and "_{\\pm " in tex
    md = report(capsys, runs, "--paper", "table2")
    assert "| ↳ paper |  | 4.16 |" in md and "55.11 ±0.17 (Δ " in md


def test_plots_are_written(runs, tmp_path, capsys):
    report(capsys, runs, "--plot", tmp_path / "plots")
    for stem in ("curve_gqa", "curve_nlvr", "params_vs_avg"):
        assert (tmp_path / "plots" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "plots" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")


def test_an_older_run_folder_without_summary_reads_the_same(runs, tmp_path, capsys):
    for seed in SEEDS:
        shutil.copytree(runs / "large" / f"seed{seed}", tmp_path / "old" / f"seed{seed}")
        (tmp_path / "old" / f"seed{seed}" / "summary.json").unlink()
    old = json.loads(report(capsys, tmp_path / "old", "--format", "json"))
    new = [json.loads(line) for line in report(capsys, runs / "large", "--format", "json").splitlines()][0]
    for key in ("method", "backbone", "seeds", "test", "avg", "from_val"):
        assert old[key] == new[key], key
    assert old["params_percent"] == pytest.approx(new["params_percent"])


def test_mean_and_sample_std():
    assert mean_std([1.0, 2.0, 4.0]) == {"mean": pytest.approx(7 / 3), "std": pytest.approx(1.5275252), "n": 3}
    assert mean_std([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1}


def test_no_run_folder_is_one_clear_error(tmp_path, capsys):
    assert cli(["report", str(tmp_path)]) == 2
    assert "no run folder" in capsys.readouterr().err


def older_video_run(folder: Path, seed: int, last_val: dict) -> None:
    """A video run folder as the trainer wrote them before summary.json: config, metrics (epochs, then the
    VALUE submission files instead of test scores) and the log's Params line."""
    folder.mkdir(parents=True)
    config = {"model": {"backbone": "facebook/bart-base"}, "pet": {"method": "single_adapter", "gate": "none"},
              "args": {"seed": seed, "tasks": "tvqa,how2qa,tvc,yc2c", "output": str(folder)}}
    (folder / "config.json").write_text(json.dumps(config))
    first = {t: v - 10 for t, v in last_val.items()}
    records = [{"epoch": 0, "val": first}, {"epoch": 1, "val": last_val},
               {"test": {}, "test_predictions": {"LAST": {"tvqa": "tvqa_test_predictions.json"}}, "epoch": 1}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "log.txt").write_text("Trainable param percentage: 3.39% (339/10000)\n")


def test_video_runs_report_validation_scores(tmp_path, capsys):
    values = {42: {"tvqa": 70.0, "how2qa": 60.0, "tvc": 40.0, "yc2c": 100.0},
              43: {"tvqa": 72.0, "how2qa": 61.0, "tvc": 44.0, "yc2c": 110.0}}
    for seed, last in values.items():
        older_video_run(tmp_path / "snap" / f"seed{seed}", seed, last)
    group = json.loads(report(capsys, tmp_path / "snap", "--format", "json", "--paper", "video"))
    assert group["split"] == "val" and group["test"] == {} and group["seeds"] == [42, 43]
    assert group["val"]["tvc"] == pytest.approx({"mean": 42.0, "std": statistics.stdev([40.0, 44.0]), "n": 2})
    assert group["method"] == "VL-Adapter" and group["backbone"] == "BART-base" and group["params_percent"] == 3.39
    assert group["paper"]["tasks"]["tvqa"]["value"] == 76.6 and group["paper"]["avg"]["value"] == 87.4
    md = report(capsys, tmp_path / "snap", "--paper", "video")
    assert "TVQA, How2QA, TVC, YC2C: validation scores" in md and "| VL-Adapter | BART-base | 3.39 | 2 |" in md
