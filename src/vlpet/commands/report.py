"""``python -m vlpet report DIR...`` (fronts ``vlpet.report``): the runs below DIR grouped over seeds, as the paper's tables.

Finds every run folder (trainer and demo runs, with ``summary.json`` or the older config.json + metrics.jsonl),
groups the finished runs whose resolved configuration differs only in the seed, and prints one row per group: method,
backbone, Params % (the run's own count), number of seeds, each task's test score as mean ± sample std (ddof 1) and
the paper's Avg (per-seed mean of the tasks, then mean ± std). Video runs report validation scores (their test
splits are unlabelled). Unfinished runs are listed apart, never averaged. ``--paper`` sets the paper's row beside
ours; ``--plot`` draws the validation curves and the Params-vs-Avg scatter (PNG and SVG).
"""

from __future__ import annotations

import argparse
import sys

from ..report.paper import TABLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders holding run folders (searched recursively)")
    parser.add_argument("--format", choices=("md", "csv", "latex", "json"), default="md",
                        help="md (default), csv, latex, or json (one object per group, then per unfinished run)")
    parser.add_argument("--paper", choices=sorted(TABLES), default=None,
                        help="add the paper's row of the same method and backbone, the difference and a ±2 std check")
    parser.add_argument("--plot", metavar="OUTDIR", default=None,
                        help="also write the validation curves per task and the Params %% vs Avg scatter here")


def run(args: argparse.Namespace) -> int:
    from ..report.groups import group_runs
    from ..report.runs import find_runs, read_runs
    from ..report.tables import FORMATS

    found = find_runs(args.dirs)
    runs = read_runs(found, lambda message: print(message, file=sys.stderr))
    if not found:
        raise ValueError(f"no run folder (summary.json, or config.json + metrics.jsonl) below {' '.join(args.dirs)}")
    if not runs:
        raise ValueError(f"none of the {len(found)} run folder(s) below {' '.join(args.dirs)} could be read "
                         "(see the warnings above)")
    groups = group_runs(runs)
    unfinished = [r for r in runs if r.status != "finished" or not r.scores]
    sys.stdout.write(FORMATS[args.format](groups, unfinished, args.paper))
    if unfinished and args.format != "md":
        print(f"note: {len(unfinished)} unfinished run(s) not averaged: {' '.join(r.path for r in unfinished)}",
              file=sys.stderr)
    if args.plot:
        from ..report.plots import plot_all

        for path in plot_all(groups, args.plot, args.paper):
            print(f"wrote {path}", file=sys.stderr)
    return 0
