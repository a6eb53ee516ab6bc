"""Profile (``torch.profiler``) one train step or one beam-5 generation at the benchmark shapes.

Usage: ``python bench/profile_step.py {train,generate} [train_step.py options] [--top 25] [--sort self_cpu_time_total]``.
Prints the profiler's operator table (top ``--top`` rows) and, last, one JSON line with the share of the profiled
wall time spent inside aten operators versus outside them (Python, bookkeeping); on CUDA also the GPU's busy time
(the sum of the kernels' device time: they run one at a time on the one stream) against the wall time, the kernel
launches per run, and the idle fraction. The train step is the trainer's at ``--task``'s shape (``train_step.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import ensure_malloc_env  # noqa: E402

if __name__ == "__main__":
    ensure_malloc_env(sys.argv[1:])

import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from train_step import autocast, make_parser, parse, setup, train_step_fn  # noqa: E402


def generate_fn(args, model, batch, device):
    model.eval()

    def run():
        with torch.inference_mode(), autocast(args, device):
            model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"], num_beams=5, max_length=20)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.split("\n")[0])
    parser.add_argument("what", choices=("train", "generate"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="self_cpu_time_total")
    args = parse(parser, argv)
    model, batch, device = setup(args)
    fn = train_step_fn(args, model, batch, device) if args.what == "train" else generate_fn(args, model, batch, device)
    for _ in range(args.warmup):
        fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            fn()
    wall = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by=args.sort, row_limit=args.top))
    in_ops = sum(e.self_cpu_time_total for e in events) / 1e6
    out = {"profile": args.what, "task": args.task, "batch": args.batch, "dtype": "bf16" if args.bf16 else "fp32",
           "device": str(device), "wall_s_per_run": round(wall / args.steps, 4),
           "aten_self_s_per_run": round(in_ops / args.steps, 4),
           "n_op_calls_per_run": sum(e.count for e in events) // args.steps}
    if device.type == "cuda":
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.device_time for e in kernels) / 1e6
        out.update(gpu_busy_s_per_run=round(busy / args.steps, 4), gpu_busy_fraction=round(busy / wall, 3),
                   kernels_per_run=len(kernels) // args.steps)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
