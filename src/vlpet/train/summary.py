"""``summary.json``: what a report needs from a run folder, written by the trainer and the demo.

``{"status": running|finished|interrupted|failed, "kind": train|demo, "seed", "backbone", "family", "config"
(the resolved configuration, as config.json), "params": {"trainable", "total", "percent"}, "split", "scores",
"from_val", "val", "best_val", "epochs", "wall_s" (summed over resumes), "segments", "error"}``. The scores are read
back from the run's own ``metrics.jsonl`` (``final_scores``, which the report also applies to older run folders
that have no summary), so the summary and the metrics never disagree. ``RunSummary.begin`` writes ``running``;
``close`` the final status; ``records_status`` around the entry point closes it as ``interrupted`` (Ctrl-C) or
``failed`` (any other error) when an exception leaves the run. A killed process leaves ``running``. Writes are atomic.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
DEMO_BACKBONE = "demo tiny BART"  # the demo's backbone is pretrained inside each run folder
_OPEN: list[RunSummary] = []  # summaries begun by the running entry point, closed by ``records_status``
_ENTERED: list[float] = []  # when each running ``records_status`` entry point started (the wall-time origin)


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a truncated last line (a killed run) is skipped."""
    records = []
    for line in path.read_text().splitlines() if path.is_file() else ():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def final_scores(records: list[dict]) -> dict:
    """The run's reported scores from its metrics records.

    Epoch records carry ``val``; the final record carries ``test``. A run whose test splits are unlabelled (video:
    ``test_predictions`` written for the VALUE server) reports its last validation scores (``split`` "val"). Tasks
    validated but not tested (GQA: its validation split is test-dev, as upstream) take their last validation
    score, listed in ``from_val``. ``scores`` is empty when no test record was written (an unfinished run)."""
    epochs = {r["epoch"]: r for r in records if "val" in r and "epoch" in r}  # a resumed epoch: its last record
    val = epochs[max(epochs)]["val"] if epochs else {}
    best = {}
    for record in epochs.values():
        for task, value in record["val"].items():
            best[task] = max(value, best.get(task, value))
    tests = [r for r in records if "test" in r]
    out = {"epochs": len(epochs), "val": val, "best_val": best, "split": "test", "scores": {}, "from_val": []}
    if not tests:
        return out
    if any(tests[-1].get("test_predictions") or {}):
        return {**out, "split": "val", "scores": dict(val)}
    scores = dict(tests[-1]["test"])
    out["from_val"] = [t for t in val if t not in scores]
    return {**out, "scores": {**scores, **{t: val[t] for t in out["from_val"]}}}


def atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def backbone_label(backbone: str) -> tuple[str, str]:
    """(label, family) of a backbone id or folder: ``facebook/bart-base`` -> ("BART-base", "bart")."""
    path = Path(str(backbone).rstrip("/"))
    name = path.name
    if name == "backbone" and _is_demo_run(path.parent):  # a demo's pretrained tiny BART, reused by a run
        return DEMO_BACKBONE, "bart"
    family = "t5" if "t5" in name.lower() else "bart"
    known = {"bart-base": "BART-base", "t5-base": "T5-base", "bart-large": "BART-large", "t5-large": "T5-large"}
    return known.get(name.lower(), name), family


def _is_demo_run(folder: Path) -> bool:
    try:
        return "demo" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


class RunSummary:
    """The summary of one run folder (written on the main process only: ``enabled``)."""

    def __init__(self, run_dir: Path, data: dict, enabled: bool):
        self.path, self.data, self.enabled = Path(run_dir) / SUMMARY, data, enabled
        self.start = _ENTERED[-1] if _ENTERED else time.time()
        previous = self._previous()
        self.before = previous.get("wall_s", 0.0)  # a resumed run: the time of its earlier segments
        self.data["segments"] = previous.get("segments", 0) + 1

    @classmethod
    def begin(cls, run_dir: Path, kind: str, config: dict, counts: tuple[int, int], seed: int,
              backbone: str | None = None, enabled: bool = True) -> RunSummary:
        trainable, total = counts
        label, family = backbone_label(config["model"]["backbone"])
        data = {"kind": kind, "seed": seed, "backbone": backbone or label, "family": family, "config": config,
                "params": {"trainable": trainable, "total": total, "percent": 100 * trainable / total}}
        summary = cls(run_dir, data, enabled)
        summary.write("running")
        _OPEN.append(summary)
        return summary

    def _previous(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def write(self, status: str, error: str | None = None) -> None:
        if not self.enabled:
            return
        scores = final_scores(read_metrics(self.path.parent / METRICS))
        wall = round(self.before + time.time() - self.start, 1)
        atomic_write_json(self.path, {**self.data, **scores, "status": status, "error": error, "wall_s": wall})

    def close(self, status: str = "finished", error: str | None = None) -> None:
        self.write(status, error)
        if self in _OPEN:
            _OPEN.remove(self)


def records_status(entry):
    """Decorate an entry point: a summary it began and did not close is closed as ``interrupted`` (Ctrl-C) or
    ``failed`` (with the error) when an exception leaves it; the exception goes on."""

    @functools.wraps(entry)
    def wrapper(*args, **kwargs):
        mark = len(_OPEN)
        _ENTERED.append(time.time())
        try:
            return entry(*args, **kwargs)
        except BaseException as err:
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            for summary in list(_OPEN[mark:]):
                summary.close("interrupted" if interrupted else "failed", f"{type(err).__name__}: {err}")
            raise
        finally:
            del _OPEN[mark:]
            _ENTERED.pop()

    return wrapper
