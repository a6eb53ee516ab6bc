"""``--plot OUTDIR``: per task, the validation curves of every group (mean over seeds, min–max band), and a
Figure-1-style scatter of Params % against Avg with the paper's points beside ours. PNG and SVG. Each configuration
(group) has its own colour and marker, the same in every figure of one report; the paper's point of a method takes
the colour of that method's first group. Epochs are numbered from 1, as in the trainer's and the demo's logs."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from .groups import METHOD_ORDER, Group, task_order
from .paper import TABLES
from .tables import TASK_NAMES


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "vlpet-report"  # fixed SVG ids: the same runs give the same file
    import matplotlib.pyplot as plt

    return plt


def method_colour(method: str):
    """A fixed colour per method label: tab20 in the paper's table order, other labels by a stable hash."""
    import matplotlib

    index = METHOD_ORDER.index(method) if method in METHOD_ORDER else zlib.crc32(method.encode())
    return matplotlib.colormaps["tab20"](index % 20)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")


def group_styles(groups: list[Group]) -> dict[str, dict]:
    """Per group key: its own colour, marker and line style. A lone group of a method keeps the method's colour;
    a method with several configurations gives each its own colour (tab10 in group order) and marker."""
    import matplotlib

    count: dict[str, int] = {}
    for g in groups:
        count[g.method] = count.get(g.method, 0) + 1
    styles = {}
    for i, g in enumerate(groups):
        colour = method_colour(g.method) if count[g.method] == 1 else matplotlib.colormaps["tab10"](i % 10)
        styles[g.key] = {"color": colour, "marker": MARKERS[i % len(MARKERS)],
                         "linestyle": LINESTYLES[(i // len(MARKERS)) % len(LINESTYLES)]}
    return styles


def _seeds(g: Group) -> str:
    n = len(g.units)
    return f"{n} seed{'s' if n != 1 else ''}" + (", a seed repeated" if g.repeated else "")


def _save(fig, out: Path, stem: str) -> list[Path]:
    """``stem``.png and ``stem``.svg, each written under a temporary name, then renamed."""
    fig.tight_layout()
    paths = []
    for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        path, tmp = out / f"{stem}.{ext}", out / f".{stem}.{ext}.tmp"
        fig.savefig(tmp, format=ext, dpi=120, metadata=metadata)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def learning_curves(plt, groups: list[Group], task: str, out: Path, styles: dict) -> list[Path]:
    """Validation ``task`` score per epoch: each group's mean over seeds, with the min–max band of the seeds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for g in groups:
        epochs = sorted(set.intersection(*(set(e for e, v in r.history.items() if task in v) for r in g.runs)))
        if not epochs:
            continue
        values = [[r.history[e][task] for r in g.runs] for e in epochs]
        x = [e + 1 for e in epochs]
        style = styles[g.key]
        ax.plot(x, [sum(v) / len(v) for v in values], **style, label=f"{g.name} ({g.backbone}, {_seeds(g)})")
        ax.fill_between(x, [min(v) for v in values], [max(v) for v in values], color=style["color"], alpha=0.2)
    ax.set(xlabel="epoch", ylabel=f"validation {TASK_NAMES.get(task, task)}",
           title=f"{TASK_NAMES.get(task, task)}: validation (mean over seeds, min–max band)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    paths = _save(fig, out, f"curve_{task}")
    plt.close(fig)
    return paths


def params_vs_avg(plt, groups: list[Group], paper: str | None, out: Path, styles: dict) -> list[Path]:
    """Params % (log axis) against Avg: ours filled with ±std bars, the paper's rows of the same methods hollow."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    first_colour = {}
    for i, g in enumerate(groups):
        first_colour.setdefault(g.method, styles[g.key]["color"])
        if g.params_percent is None:
            continue
        style = styles[g.key]
        ax.errorbar(g.params_percent, g.avg["mean"], yerr=g.avg["std"], fmt=style["marker"], color=style["color"],
                    capsize=3, label=f"{g.name} ({g.backbone}, ours)")
        offset = ((5, 4), (5, -11), (-8, 10), (-8, -17))[i % 4]  # labels of nearby points do not overprint
        ax.annotate(g.name, (g.params_percent, g.avg["mean"]), textcoords="offset points", xytext=offset,
                    fontsize="x-small", color=style["color"])
    table = paper or ("video" if groups and all(g.split == "val" for g in groups) else "table2")
    shown = {(g.family, g.method) for g in groups}
    for (family, method), (params, _, (avg, _std)) in TABLES[table].items():
        if (family, method) in shown:
            ax.plot(params, avg, marker="s", markerfacecolor="none", linestyle="none",
                    color=first_colour.get(method, method_colour(method)),
                    label=f"{method} ({family.upper()}, paper)")
    ax.set_xscale("log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")  # 4, 10, 30 rather than 4x10^0
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set(xlabel="trainable parameters (%)", ylabel="Avg.",
           title="Params % against Avg. (filled: ours, hollow: paper)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small")
    paths = _save(fig, out, "params_vs_avg")
    plt.close(fig)
    return paths


def plot_all(groups: list[Group], outdir: str, paper: str | None) -> list[Path]:
    plt = _pyplot()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = task_order(set().union(*(g.tasks for g in groups))) if groups else []
    styles = group_styles(groups)
    paths = [p for task in tasks
             for p in learning_curves(plt, [g for g in groups if task in g.tasks], task, out, styles)]
    return paths + params_vs_avg(plt, groups, paper, out, styles)
