"""Smoke test of bench/train_step.py and bench/generate.py: tiny backbones, one JSON line with the documented keys.

No timing assertions. Each script runs as a subprocess without the glibc allocator variables in its environment,
so the self re-exec that sets them is exercised too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--feat-dim", "32", "--steps", "1", "--warmup", "1", "--batch", "2", "--threads", "1", "--device", "cpu"]
COMMON_KEYS = {
    "bench", "backbone", "method", "device", "device_name", "dtype", "batch", "text_len", "vis_tokens", "target_len",
    "threads", "steps", "warmup", "samples_per_s", "peak_rss_mb", "cuda_peak_alloc_mb", "trainable_params",
    "total_params", "malloc_env", "torch",
}


def run_bench(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "VLPET_BENCH_REEXEC")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, *TINY], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def check_common(out: dict, bench: str, backbone: str, method: str) -> None:
    assert COMMON_KEYS | {f"{bench}_s_median", f"{bench}_s_min", f"{bench}_s_max"} <= set(out)
    assert out["bench"] == bench and out["backbone"] == backbone and out["method"] == method
    assert out["device"] == "cpu" and out["cuda_peak_alloc_mb"] is None
    assert out["batch"] == 2 and out["vis_tokens"] in (36, 72)
    assert out["compile"] is False and out["compile_requested"] is False
    assert out[f"{bench}_s_median"] > 0 and out["samples_per_s"] > 0 and out["peak_rss_mb"] > 0
    assert 0 < out["trainable_params"] < out["total_params"]
    assert out["malloc_env"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def test_train_step_tiny_bart():
    """The trainer's caption shape (targets padded to 40), bf16 with the frozen copies, micro-batches of 1."""
    out = run_bench("train_step.py", "--backbone", "tiny-bart", "--method", "vl-pet-large", "--bf16", "--task",
                    "caption", "--micro-batch-size", "1")
    check_common(out, "step", "tiny-bart", "vl-pet-large")
    assert out["dtype"] == "bf16-autocast" and out["precision"] == "bf16" and out["micro_batch_size"] == 1
    assert out["task"] == "caption" and out["target_len"] == 40 and out["text_len"] == 4
    assert math.isfinite(out["loss"]) and out["loss"] > 0 and out["first_step_s"] > 0


def test_train_step_default_batch_is_the_published_per_task_batch():
    import importlib
    sys.path.insert(0, str(ROOT / "bench"))
    train_step = importlib.import_module("train_step")
    parse = lambda *a: train_step.parse(train_step.make_parser(""), list(a))  # noqa: E731
    cuda = ("--device", "cuda")  # only parsed: the default batch is the published one on a GPU
    assert parse("--task", "gqa", *cuda).batch == 833 and parse("--task", "nlvr", *cuda).batch == 166
    assert parse("--task", "caption", "--backbone", "t5-base", *cuda).batch == 250
    assert parse("--task", "fixed", *cuda).batch == 8 and parse("--task", "gqa", "--batch", "4").batch == 4
    assert parse("--task", "gqa", "--device", "cpu").batch == 8


def test_generate_tiny_t5():
    out = run_bench("generate.py", "--backbone", "tiny-t5", "--method", "vl-pet-small")
    check_common(out, "generate", "tiny-t5", "vl-pet-small")
    assert out["dtype"] == "fp32" and out["onednn"] is False and out["num_beams"] == 5 and out["max_length"] == 20
    assert out["task"] == "caption"
    assert 1 < out["out_len"] <= 20


def test_run_time_tiny_bart():
    out = run_bench("run_time.py", "--backbone", "tiny-bart", "--method", "vl-pet-large", "--measure-batch", "2",
                    "--gen-batch", "2", "--fast", "onednn")
    assert out["bench"] == "run_time" and out["scaled_linearly"] is True
    assert out["train_batch_published"] == {"vqa": 500, "gqa": 833, "nlvr": 166, "caption": 416}
    assert out["fast_path"] == "fp32 --onednn"
    tasks = {"vqa", "gqa", "nlvr", "caption"}
    assert set(out["train_flops_per_example"]) == tasks and all(v > 0 for v in out["train_flops_per_example"].values())
    for path in ("fp32", "fast"):
        t = out[path]
        assert set(t["s_per_example"]) == {"train", "val"}
        assert all(set(v) == tasks and min(v.values()) > 0 for v in t["s_per_example"].values())
        assert t["total_h"] >= t["train_h"] > 0 and t["val_h"] > 0 and t["test_h"] > 0 and t["mfu_measured"] > 0
        assert t["matmul_precision"] == "fp32" and t["mfu_datasheet"] is None  # a CPU has no datasheet row


def test_loader_packed_with_roofline():
    """``--layouts packed``: timings of the packed layout only (the h5 timing is the same code on the h5 tree)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "loader.py"), "--n-train", "4", "--feat-dim", "8",
                           "--batch-size", "12", "--epochs", "1", "--workers", "0", "1", "--layouts", "packed",
                           "--memcpy-mb", "4", "--memcpy-reps", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["examples_per_epoch"] > 0 and out["images"] > 0
    assert out["packed_workers0"] > 0 and out["packed_workers1"] > 0 and not any(k.startswith("h5_") for k in out)
    assert out["bytes_per_example"] == 49 * 8 * 2 and out["memcpy_bytes_per_s"] > 0
    assert out["roofline_examples_per_s"] == pytest.approx(out["memcpy_bytes_per_s"] / (49 * 8 * 2), rel=1e-3)
    assert set(out["roofline_fraction"]) == {"packed_workers0", "packed_workers1"}


def test_train_step_tiny_t5_lst():
    """Every method runs, LST's side network included (T5 only)."""
    out = run_bench("train_step.py", "--backbone", "tiny-t5", "--method", "lst", "--onednn")
    check_common(out, "step", "tiny-t5", "lst")
    assert out["onednn"] is True
    assert 0 < out["rss_after_build_mb"] <= out["peak_rss_mb"] and math.isfinite(out["loss"])


def test_memory_accounting_and_table_tiny(capsys):
    """bench/memory.py on CPU: the estimate grows with the chunk alive at once; micro-batches and checkpointing
    lower it; the table names flags for every GPU size (in process: tiny model, two measured batches)."""
    import importlib
    sys.path.insert(0, str(ROOT / "bench"))
    memory = importlib.import_module("memory")
    base = ["--backbone", "tiny-bart", "--feat-dim", "32", "--task", "caption", "--batch", "64"]
    outs = {}
    for name, extra in {"full": [], "micro": ["--micro-batch-size", "8"],
                        "ckpt": ["--gradient-checkpointing"]}.items():
        assert memory.main(base + extra) == 0
        outs[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outs["full"]["peak_mib"] > outs["micro"]["peak_mib"] > 0 and outs["micro"]["chunk"] == 8
    assert outs["full"]["saved_mib"] > outs["ckpt"]["saved_mib"] > 0
    assert memory.main(["--backbone", "tiny-bart", "--feat-dim", "32", "--table", "--gpus", "1,80"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    runs = [r for r in rows if r.get("task") == "run"]
    assert [r["gpu_gb"] for r in runs] == [1, 80] and runs[1]["flags"] == "(none: fp32)"
