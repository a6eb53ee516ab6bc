"""scripts/seeds.sh with stub launchers (the real lib.sh, a stand-in for torchrun): the seed argument is found and
replaced, finished seeds are skipped, a failed seed does not stop the others, an unfinished one resumes, launchers
without a seed argument get distinct output folders, and GPUS runs seeds at once on distinct devices and ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS_SH = ROOT / "scripts" / "seeds.sh"

# A stand-in for `python`: `-m vlpet.train.launch ...` records its call and plays a run (failing for FAIL_SEED),
# anything else (vlpet.report.status) runs the real interpreter.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2" != "-m vlpet.train.launch" ]; then exec {python} "$@"; fi
echo "CVD=${{CUDA_VISIBLE_DEVICES:-}} $*" >> {calls}
out="" seed=""
while [ $# -gt 0 ]; do
    case $1 in --output) out=$2 ;; --seed) seed=$2 ;; esac
    shift
done
[ "$seed" = "${{FAIL_SEED:-}}" ] && exit 3
mkdir -p "$out"
echo '{summary}' > "$out/summary.json"
"""
FINISHED = json.dumps({"status": "finished", "backbone": "b", "family": "bart", "scores": {"vqa": 1.0},
                       "config": {"model": {}, "pet": {"method": "vl-pet", "gate": "large"}}})

STUB = """#!/usr/bin/env bash
# a stub launcher with a published-style usage line
set -euo pipefail
source "{lib}"
if [ $# -lt {n} ]; then echo "usage: $0 {usage} [flags...]" >&2; exit 2; fi
{body}
"""


@pytest.fixture
def env(tmp_path):
    calls = tmp_path / "calls.txt"
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable, calls=calls, summary=FINISHED))
    python.chmod(0o755)
    stubs = {"with_seed.sh": ("PORT DIM SEED", 3, f'launch $1 1 --output "{tmp_path}/runs/dim$2_seed$3" --seed $3 '
                                                 '"${@:4}"'),
             "no_seed.sh": ("NPROC", 1, f'launch 26757 $1 --output "{tmp_path}/runs/plain" "${{@:2}}"')}
    for name, (usage, n, body) in stubs.items():
        (tmp_path / name).write_text(STUB.format(lib=ROOT / "scripts" / "lib.sh", n=n, usage=usage, body=body))
    return {"tmp": tmp_path, "calls": calls,
            "env": dict(os.environ, PYTHON=str(python), LOGDIR=str(tmp_path / "logs"),
                        PYTHONPATH=str(ROOT / "src"))}


def seeds(env, launcher: str, *args: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SEEDS_SH), str(env["tmp"] / launcher), *args], capture_output=True, text=True,
                          env={**env["env"], **extra}, timeout=120)


def _port(call: str) -> str:
    """The master port of a recorded ``-m vlpet.train.launch NPROC PORT ...`` call."""
    return call.split("-m vlpet.train.launch ", 1)[1].split()[1]


def calls(env) -> list[str]:
    lines = env["calls"].read_text().splitlines() if env["calls"].exists() else []
    env["calls"].unlink(missing_ok=True)
    return lines


def test_each_seed_replaces_the_seed_argument_and_a_failure_does_not_stop_the_others(env):
    done = seeds(env, "with_seed.sh", "20000", "7", "42", "--lr", "1", SEEDS="1 2 3", FAIL_SEED="2")
    assert done.returncode == 1, done.stderr
    made = calls(env)
    assert len(made) == 3
    for seed, line in zip("123", made):
        assert f"--output {env['tmp']}/runs/dim7_seed{seed} --seed {seed} --lr 1" in line
        assert _port(line) == "20000" and "--resume" not in line
    assert "2: FAILED (exit 3" in done.stdout and "1: finished" in done.stdout and "3: finished" in done.stdout
    assert (env["tmp"] / "logs" / "with_seed_seed2.log").is_file()
    again = seeds(env, "with_seed.sh", "20000", "7", "42", SEEDS="1 2 3")  # finished seeds skipped, 2 run again
    assert again.returncode == 0, again.stderr
    assert [line.split("--seed ")[1].split()[0] for line in calls(env)] == ["2"]
    summary = again.stdout.split("seeds of with_seed.sh:")[1]
    assert summary.count("finished already, skipped") == 2 and "2: finished" in summary


def test_an_unfinished_seed_with_a_checkpoint_resumes(env):
    run = env["tmp"] / "runs" / "dim7_seed5"
    run.mkdir(parents=True)
    (run / "LATEST").write_text("LAST\n")
    (run / "summary.json").write_text(json.dumps({"status": "interrupted", "config": {"pet": {}}, "backbone": "b",
                                                  "family": "bart", "scores": {}}))
    done = seeds(env, "with_seed.sh", "20000", "7", "42", SEEDS="5")
    assert done.returncode == 0, done.stderr
    assert calls(env)[0].endswith("--seed 5 --resume")


def test_a_launcher_without_a_seed_argument_gets_one_output_folder_per_seed(env):
    done = seeds(env, "no_seed.sh", "1", SEEDS="42 43")
    assert done.returncode == 0, done.stderr
    made = calls(env)
    for seed, line in zip(("42", "43"), made):
        assert line.endswith(f"--seed {seed} --output {env['tmp']}/runs/plain_seed{seed} --run_name plain_seed{seed}")
    assert all((env["tmp"] / "runs" / f"plain_seed{s}" / "summary.json").is_file() for s in (42, 43))


def test_gpus_run_seeds_at_once_on_distinct_devices_and_ports(env):
    done = seeds(env, "with_seed.sh", "20000", "7", "42", SEEDS="1 2 3", GPUS="0 1")
    assert done.returncode == 0, done.stderr
    made = calls(env)
    assert len(made) == 3
    by_seed = {line.split("--seed ")[1].split()[0]: line for line in made}
    assert {by_seed[s].split()[0] for s in ("1", "2")} == {"CVD=0", "CVD=1"}
    assert {_port(by_seed[s]) for s in ("1", "2")} == {"20000", "20001"}


def test_wrong_arguments_are_one_clear_error(env):
    done = seeds(env, "with_seed.sh", "20000")
    assert done.returncode == 2 and "PORT DIM SEED" in done.stderr and not env["calls"].exists()
