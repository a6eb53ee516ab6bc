"""Are two identical training backwards bitwise equal on this device? (issue 20 item 9)

Usage: ``python bench/determinism.py [--backbone bart-base] [--task gqa] [--batch 64] [--device cuda] [--bf16]
[--deterministic]``. One JSON line: the same model state, batch and RNG seed, the trainer's loss and backward run
twice; ``equal`` says whether every gradient is bitwise the same, ``max_abs_diff`` the largest difference. On CUDA
the padded batches' attention runs the memory-efficient SDPA kernel, whose backward is nondeterministic by default;
``--deterministic`` sets ``torch.use_deterministic_algorithms(True)`` (with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``,
set before CUDA starts), which makes that kernel take its deterministic path.
"""

from __future__ import annotations

import os
import sys

if "--deterministic" in sys.argv:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import json  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from shapes import TASKS, make_task_batch  # noqa: E402
from train_step import resolve_device  # noqa: E402
from vlpet.config import ModelConfig, SpeedConfig  # noqa: E402
from vlpet.flags.published import method_preset  # noqa: E402
from vlpet.models.build import build_model  # noqa: E402
from vlpet.models.presets import resolve_preset  # noqa: E402
from vlpet.tasks import get_task  # noqa: E402
from vlpet.train.speed import apply_model_options  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="bart-base")
    p.add_argument("--method", default="vl-pet-large")
    p.add_argument("--task", default="gqa", choices=TASKS)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--feat-dim", type=int, default=2048, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    kind = resolve_preset(args.backbone).kind
    model = build_model(ModelConfig(backbone=args.backbone, feat_dim=args.feat_dim),
                        method_preset(args.method, kind)).to(device).train()
    apply_model_options(model, SpeedConfig(bf16=args.bf16), device)
    batch = make_task_batch(model, args.task, args.batch, device, 0, args.feat_dim)
    grads = []
    for _ in range(2):
        torch.manual_seed(1)  # the same dropout masks
        with torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext():
            get_task(args.task).loss(model, batch).backward()
        grads.append({n: q.grad.detach().clone() for n, q in model.named_parameters() if q.grad is not None})
        model.zero_grad(set_to_none=True)
    diffs = {n: float((grads[0][n] - grads[1][n]).abs().max()) for n in grads[0]}
    print(json.dumps({"bench": "determinism", "backbone": args.backbone, "task": args.task, "batch": args.batch,
                      "device": str(device), "bf16": args.bf16, "deterministic": args.deterministic,
                      "equal": all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0]),
                      "max_abs_diff": max(diffs.values()), "tensors_differing": sum(v > 0 for v in diffs.values()),
                      "tensors": len(diffs)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
