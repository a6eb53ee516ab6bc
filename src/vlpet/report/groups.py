"""Group finished runs whose configuration differs only in the seed; mean ± sample std (ddof 1) over seeds.

The Avg of a group is the paper's: the mean of the task scores of each run, then mean ± std over the runs.
``compare`` sets a group beside the paper's row of the same method and backbone family.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from .paper import IMAGE, TABLE2, TABLE9, TABLES, VIDEO
from .runs import Run, short_hash

TASK_ORDER = IMAGE + VIDEO
# Table order of the methods (Table 2, then Table 9's variants); other labels follow alphabetically.
METHOD_ORDER = list(dict.fromkeys(label for _, label in [*TABLE2, *TABLE9]))


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "n"}``; the sample standard deviation (ddof 1), 0 for one value."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def task_order(tasks) -> list[str]:
    return sorted(tasks, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))


@dataclass
class Group:
    """The runs of one configuration (one per seed), and their statistics."""

    runs: list[Run]
    name: str = ""  # the method label, made unique by ``group_runs``

    def __post_init__(self):
        self.runs = sorted(self.runs, key=lambda r: (r.seed is None, r.seed or 0, r.path))
        first = self.runs[0]
        self.method, self.backbone, self.family, self.split = first.method, first.backbone, first.family, first.split
        self.key = short_hash(first.key)
        # One unit per distinct seed: runs of the same seed (a rerun, a copied folder) are one seed, not several,
        # their scores averaged into it; a run whose seed is unknown is a unit of its own.
        units: dict = defaultdict(list)
        for i, run in enumerate(self.runs):
            units[run.seed if run.seed is not None else ("?", i)].append(run)
        self.units = list(units.values())
        self.repeated = {str(u[0].seed): len(u) for u in self.units if len(u) > 1}
        unit_scores = [_unit_scores(u) for u in self.units]
        self.tasks = task_order(set().union(*(r.scores for r in self.runs)))
        self.stats = {t: mean_std([s[t] for s in unit_scores if t in s]) for t in self.tasks}
        self.avg = mean_std([statistics.fmean(s.values()) for s in unit_scores])
        percents = [r.params_percent for r in self.runs if r.params_percent is not None]
        self.params_percent = statistics.fmean(percents) if percents else None
        self.from_val = task_order(set().union(*(r.from_val for r in self.runs)))

    @property
    def seeds(self) -> list:
        """The distinct seeds (a repeated seed once; see ``repeated``)."""
        return [u[0].seed for u in self.units]

    @property
    def seeds_text(self) -> str:
        """``42, 43`` or ``42 (×2 runs), 43``."""
        return ", ".join(f"{u[0].seed} (×{len(u)} runs)" if len(u) > 1 else str(u[0].seed) for u in self.units)

    def sort_key(self) -> tuple:
        rank = METHOD_ORDER.index(self.method) if self.method in METHOD_ORDER else len(METHOD_ORDER)
        return (self.split != "test", tuple(task_order(self.tasks)), self.family, self.backbone, rank, self.method,
                self.key)


def _unit_scores(runs: list[Run]) -> dict[str, float]:
    """The scores of one seed: its run's, or the mean over the runs that share it."""
    tasks = set().union(*(r.scores for r in runs))
    return {t: statistics.fmean([r.scores[t] for r in runs if t in r.scores]) for t in tasks}


def group_runs(runs: list[Run]) -> list[Group]:
    """Finished runs grouped over seeds, in table order; names are the method labels, with the configuration's
    hash appended where two groups of one backbone share a label."""
    by_key = defaultdict(list)
    for run in runs:
        if run.status == "finished" and run.scores:
            by_key[run.key].append(run)
    groups = sorted((Group(members) for members in by_key.values()), key=Group.sort_key)
    labels = defaultdict(int)
    for g in groups:
        labels[(g.method, g.backbone, g.split)] += 1
    for g in groups:
        g.name = g.method if labels[(g.method, g.backbone, g.split)] == 1 else f"{g.method} #{g.key[:6]}"
    return groups


def compare(group: Group, table: str) -> dict | None:
    """The paper's row for ``group`` (same method label and backbone family) with, per task, the paper's value,
    ours minus the paper's (``diff``) and whether the paper's value lies within our mean ± 2 std; None when the
    table has no such row. The Avg is compared only when the group has exactly the paper's tasks."""
    row = TABLES[table].get((group.family, group.method))
    if row is None:
        return None
    params, cells, (avg, avg_std) = row

    def beside(ours: dict, value: float, std: float | None) -> dict:
        diff = ours["mean"] - value
        return {"value": value, "std": std, "diff": diff, "within_2std": abs(diff) <= 2 * ours["std"] + 1e-9}

    tasks = {t: beside(group.stats[t], *cells[t]) for t in group.tasks if t in cells}
    same = set(group.tasks) == set(cells)
    return {"table": table, "method": group.method, "params_percent": params, "tasks": tasks,
            "avg": beside(group.avg, avg, avg_std) if same else None}
