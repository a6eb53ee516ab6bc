"""Smoke test of bench/extract.py on a tiny trunk: one JSON line with the documented keys (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_extract_bench_tiny():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "extract.py"), "--tiny", "--n-images", "3",
                           "--batch-size", "2", "--workers", "0", "--threads", "1", "--device", "cpu",
                           "--size", "64x48"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip())
    assert out["bench"] == "extract" and out["device"] == "cpu" and out["dtype"] == "fp32" and out["written"] == 3
    for key in ("decode_images_per_s", "forward_images_per_s", "end_to_end_images_per_s"):
        assert out[key] > 0
    assert out["h5_bytes"] >= 49 * 256 * 2
