"""The report as Markdown, CSV, LaTeX or JSON lines: one row per group, one table per split and task set."""

from __future__ import annotations

import csv
import io
import json
from itertools import groupby

from .groups import Group, compare, task_order
from .paper import TITLES
from .runs import Run

TASK_NAMES = {"vqa": "VQA", "gqa": "GQA", "nlvr": "NLVR²", "caption": "COCO CIDEr", "tvqa": "TVQA",
              "how2qa": "How2QA", "tvc": "TVC", "yc2c": "YC2C"}
SPLIT_TITLES = {"test": "test scores",
                "val": "validation scores (the test splits are unlabelled: scored on the VALUE server)"}


def sections(groups: list[Group]) -> list[tuple[str, list[str], list[Group]]]:
    """(split, tasks, groups) per table: groups with the same split and tasks share a table."""
    key = lambda g: (g.split, tuple(g.tasks))  # noqa: E731
    return [(split, list(tasks), list(members)) for (split, tasks), members in groupby(groups, key)]


def _cell(stats: dict | None) -> str:
    return "–" if stats is None else f"{stats['mean']:.2f} ±{stats['std']:.2f}"


def _paper_cell(cmp: dict | None) -> str:
    if cmp is None:
        return "–"
    std = "" if cmp["std"] is None else f" ±{cmp['std']:.2f}"
    return f"{cmp['value']:.2f}{std} (Δ {cmp['diff']:+.2f} {'✓' if cmp['within_2std'] else '✗'})"


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def markdown(groups: list[Group], unfinished: list[Run], paper: str | None) -> str:
    out = ["# Results over seeds", "",
           "Mean ± sample standard deviation (ddof 1) over seeds. Avg.: the mean of the task scores of each run, "
           "then mean ± std over the runs. Params (%): each run's own trainable / total count."]
    if paper:
        out += ["", f"↳ rows: {TITLES[paper]}; Δ = ours − paper; ✓: the paper's value lies within our "
                "mean ± 2 std, ✗: it does not."]
    for split, tasks, members in sections(groups):
        out += ["", f"## {', '.join(TASK_NAMES.get(t, t) for t in tasks)}: {SPLIT_TITLES[split]}", ""]
        notes = task_order(set().union(*(g.from_val for g in members)))
        if notes and split == "test":
            out += [f"{', '.join(TASK_NAMES.get(t, t) for t in notes)}: the last epoch's validation score "
                    "(GQA's validation split is test-dev, as in the paper).", ""]
        out += ["| " + " | ".join(["Method", "Backbone", "Params (%)", "Seeds", *(TASK_NAMES.get(t, t)
                                                                              for t in tasks), "Avg."]) + " |",
                "|" + "---|" * (len(tasks) + 5)]
        for g in members:
            out.append("| " + " | ".join([g.name, g.backbone, _percent(g.params_percent), _seeds_cell(g),
                                          *(_cell(g.stats[t]) for t in tasks), _cell(g.avg)]) + " |")
            cmp = compare(g, paper) if paper else None
            if cmp:
                out.append("| " + " | ".join(["↳ paper", "", f"{cmp['params_percent']:.2f}", "",
                                              *(_paper_cell(cmp["tasks"].get(t)) for t in tasks),
                                              _paper_cell(cmp["avg"])]) + " |")
        out += ["", "Runs:"] + [f"- {g.name} ({g.backbone}), seeds {g.seeds_text}: "
                                f"{', '.join(r.path for r in g.runs)}" for g in members]
        repeated = [g for g in members if g.repeated]
        if repeated:
            out += [""] + [f"⚠ {g.name}: {_repeats(g)}: each seed counted once (its runs' scores averaged); "
                           "rerun with another --seed for a spread over seeds." for g in repeated]
    if unfinished:
        out += ["", "## Unfinished runs (not averaged)", "",
                "| Run | Method | Backbone | Seed | Status | Epochs | Last validation |", "|---" * 7 + "|"]
        out += [f"| {r.path} | {r.method} | {r.backbone} | {r.seed} | {_status(r)} | {r.epochs} | "
                + (" ".join(f"{t} {v:.2f}" for t, v in r.last_val.items()) or "–") + " |" for r in unfinished]
    return "\n".join(out) + "\n"


def _seeds_cell(g: Group) -> str:
    """The number of distinct seeds; ⚠ when a seed ran more than once (explained under the table)."""
    return f"{len(g.units)} ⚠" if g.repeated else str(len(g.units))


def _repeats(g: Group) -> str:
    return ", ".join(f"seed {seed} ran {n} times" for seed, n in g.repeated.items())


def _status(run: Run) -> str:
    text = {"running": "running (or killed)"}.get(run.status, run.status)
    return f"{text}: {run.error}" if run.error else text


def records(groups: list[Group], unfinished: list[Run], paper: str | None) -> list[dict]:
    """One JSON object per group, then one per unfinished run (``"unfinished": true``)."""
    rows = []
    for g in groups:
        scores = {t: g.stats[t] for t in g.tasks}
        rows.append({"name": g.name, "key": g.key, "backbone": g.backbone, "family": g.family, "method": g.method,
                     "seeds": g.seeds, "repeated_seeds": g.repeated, "runs": [r.path for r in g.runs],
                     "params_percent": g.params_percent,
                     "split": g.split, "test": scores if g.split == "test" else {},
                     "val": scores if g.split == "val" else {}, "from_val": g.from_val, "avg": g.avg,
                     "wall_s": [r.wall_s for r in g.runs], **({"paper": compare(g, paper)} if paper else {})})
    rows += [{"unfinished": True, "run": r.path, "status": r.status, "error": r.error, "seed": r.seed,
              "method": r.method, "backbone": r.backbone, "epochs": r.epochs, "last_val": r.last_val}
             for r in unfinished]
    return rows


def json_lines(groups: list[Group], unfinished: list[Run], paper: str | None) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in records(groups, unfinished, paper))


def csv_text(groups: list[Group], unfinished: list[Run], paper: str | None) -> str:
    """One line per group: means and stds per task, Avg, the paper's values and differences with ``--paper``."""
    tasks = task_order(set().union(*(g.tasks for g in groups))) if groups else []
    header = ["name", "method", "backbone", "params_percent", "n_seeds", "seeds", "split"]
    header += [f"{t}_{s}" for t in [*tasks, "avg"] for s in ("mean", "std")]
    if paper:
        header += [f"paper_{t}_{s}" for t in [*tasks, "avg"] for s in ("value", "diff", "within_2std")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*header, "runs"])
    for g in groups:
        stats = {**g.stats, "avg": g.avg}
        row = [g.name, g.method, g.backbone, _number(g.params_percent), len(g.units), " ".join(map(str, g.seeds)),
               g.split, *(_number(stats.get(t, {}).get(s)) for t in [*tasks, "avg"] for s in ("mean", "std"))]
        if paper:
            cmp = compare(g, paper) or {"tasks": {}, "avg": None}
            cells = {**cmp["tasks"], "avg": cmp["avg"] or {}}
            row += [_number((cells.get(t) or {}).get(s)) for t in [*tasks, "avg"]
                    for s in ("value", "diff", "within_2std")]
        writer.writerow([*row, " ".join(r.path for r in g.runs)])
    return buffer.getvalue()


def _number(value) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else f"{value:.4f}"


LATEX_TASKS = {**TASK_NAMES, "nlvr": "NLVR$^2$"}


def _tex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def _tex_cell(stats: dict | None) -> str:
    return "--" if stats is None else f"${stats['mean']:.2f}_{{\\pm {stats['std']:.2f}}}$"


def latex(groups: list[Group], unfinished: list[Run], paper: str | None) -> str:
    """One booktabs tabular per table, the paper's subscript-std style; paper rows in italics with ``--paper``."""
    out = []
    for split, tasks, members in sections(groups):
        out += [f"% {SPLIT_TITLES[split]}", r"\begin{tabular}{ll" + "r" * (len(tasks) + 3) + "}", r"\toprule",
                " & ".join(["Method", "Backbone", r"Params (\%)", "Seeds", *(LATEX_TASKS.get(t, _tex(t))
                                                                          for t in tasks), "Avg."]) + r" \\",
                r"\midrule"]
        for g in members:
            out.append(" & ".join([_tex(g.name), _tex(g.backbone), _percent(g.params_percent), str(len(g.units)),
                                   *(_tex_cell(g.stats[t]) for t in tasks), _tex_cell(g.avg)]) + r" \\")
            cmp = compare(g, paper) if paper else None
            if cmp:
                cells = [cmp["tasks"].get(t) for t in tasks] + [cmp["avg"]]
                out.append(" & ".join([r"\textit{paper}", "", f"{cmp['params_percent']:.2f}", "",
                                       *("--" if c is None else f"${c['value']:.2f}$ ({c['diff']:+.2f})"
                                         for c in cells)]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    out += [f"% unfinished (not averaged): {r.path} ({r.status})" for r in unfinished]
    return "\n".join(out) + ("\n" if unfinished else "")


FORMATS = {"md": markdown, "csv": csv_text, "latex": latex, "json": json_lines}
