"""The offline demo end to end: its short configuration (``--quick``) always, the full one with VLPET_FULL_DEMO=1.

The quick run (``--quick --tasks vqa,gqa``, under a minute) checks the run folder, the output contract, that the
training loss falls and that VQA/GQA accuracy rises well above the best constant guess; the full demo (all four tasks,
about 3 minutes on 2 CPU cores) is checked the same way with VLPET_FULL_DEMO=1.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlpet.demo import QUICK

SRC = Path(__file__).resolve().parents[1] / "src"


def run_demo(out: Path, *flags: str, tasks=("vqa", "gqa", "nlvr", "caption")) -> tuple[dict, list[str], list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "vlpet", "demo", "--no-progress", "--out", str(out), *flags],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"run_dir", "test", "chance"}
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == out
    for name in ("log.txt", "metrics.jsonl", "config.json"):
        assert (run_dir / name).is_file(), name
    assert any(line.startswith("Trainable param percentage:") for line in lines)
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "val" in epochs[0] and "test" in epochs[-1]
    assert set(result["test"]) == set(tasks) == set(result["chance"])
    return result, lines, epochs


def test_quick_demo(tmp_path):
    result, _, metrics = run_demo(tmp_path, "--quick", "--tasks", "vqa,gqa", tasks=("vqa", "gqa"))
    epochs = [m for m in metrics if "train" in m]
    assert len(epochs) == QUICK["epochs"]
    assert epochs[-1]["train"]["loss"] < 0.5 * epochs[0]["train"]["loss"]
    gains = {task: result["test"][task] - result["chance"][task] for task in result["test"]}
    assert gains["vqa"] >= 8 and gains["gqa"] >= 8, (result, gains)
    assert (Path(result["run_dir"]) / "backbone" / "config.json").is_file()  # the pretrained local backbone
    summary = json.loads((Path(result["run_dir"]) / "summary.json").read_text())  # what `vlpet report` reads
    assert summary["status"] == "finished" and summary["scores"] == pytest.approx(result["test"], abs=0.006)
    if importlib.util.find_spec("matplotlib") is not None:
        assert (Path(result["run_dir"]) / "learning_curve.png").is_file()


def test_bad_task_list_is_one_clear_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "vlpet", "demo", "--tasks", "vqa,ocr", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "--tasks" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.skipif(not os.environ.get("VLPET_FULL_DEMO"), reason="the full demo takes minutes; set VLPET_FULL_DEMO=1")
def test_full_demo_beats_chance(tmp_path):
    start = time.perf_counter()
    result, _, _ = run_demo(tmp_path)
    gains = {task: result["test"][task] - result["chance"][task] for task in result["test"]}
    assert gains["vqa"] >= 15 and gains["gqa"] >= 15 and gains["nlvr"] >= 5 and gains["caption"] > 0, (result, gains)
    assert time.perf_counter() - start < 300
