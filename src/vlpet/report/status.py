"""``python -m vlpet.report.status RUN_DIR``: what ``scripts/seeds.sh`` should do with one seed's run folder.

Prints ``finished`` (the run is complete: skip it), ``resume`` (unfinished, with a checkpoint to continue from:
add ``--resume``) or ``start`` (no run there yet, or one that stopped before its first checkpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .runs import find_runs, read_run


def seed_action(run_dir: Path) -> str:
    try:
        finished = run_dir.is_dir() and run_dir in find_runs([str(run_dir)]) and read_run(run_dir).status == "finished"
    except ValueError:  # an unreadable summary: not known to be finished
        finished = False
    if finished:
        return "finished"
    return "resume" if (run_dir / "LATEST").is_file() else "start"


if __name__ == "__main__":
    print(seed_action(Path(sys.argv[1])))
