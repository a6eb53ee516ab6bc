"""Estimated hours of the published 20-epoch multi-task image-text run (VQA, GQA, NLVR2, COCO caption) on this device.

Usage: ``python bench/run_time.py --backbone {bart-base,t5-base} --method vl-pet-large --device cuda|cpu
[--measure-batch N] [--gen-batch N] [--epochs 20] [--steps 3] [--warmup 1] [--threads T]``. Prints ONE JSON line.

What is measured, for the faithful path (fp32 eager) and the fast path (``--fast``; ``auto``: bf16 autocast, plus
TF32, on CUDA and on CPUs with native bf16 matmuls (AMX / AVX512-BF16 in ``/proc/cpuinfo``); elsewhere fp32 with
``--onednn``, since emulated bf16 is slower than fp32 there):
* the train step (forward, loss, backward, clip, HFAdamW, as ``bench/train_step.py``) at the published batch
  (500 BART / 300 T5). ``--measure-batch`` times a smaller batch instead and scales it linearly to the published one
  (said in ``train_batch_measured``; the CPU default is 8, since a 500-sample step does not fit in a CPU budget);
* validation at the published settings (pipeline spec §5.1): VQA and GQA greedy (max_length 20), COCO captions
  beam 5 (max_length 20), NLVR2 one forward, timed on ``--gen-batch`` samples and scaled per example.

Every example is timed at the benchmark shape (20 text tokens, 36 visual tokens, 20-token targets) with random
weights, so generation always runs the full 20 tokens: an upper bound for VQA/GQA/NLVR2, whose answers are a few
tokens. The per-example times are multiplied by the real split sizes (data-prep spec §6, pipeline spec §1.5): train
every epoch, validation every epoch, test once after the last. ``mfu`` is the train step's model FLOPs (counted by
``torch.utils.flop_counter``) per second over this device's measured dense-GEMM rate in the same dtype.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import ensure_malloc_env  # noqa: E402

if __name__ == "__main__":
    ensure_malloc_env(sys.argv[1:])

import json  # noqa: E402
import statistics  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from train_step import build, make_batch, make_parser, parse, timed, train_step_fn  # noqa: E402
from vlpet.models.onednn import use_onednn, use_stock  # noqa: E402

PUBLISHED_BATCH = {"bart": 500, "t5": 300}
# Examples per split (data-prep spec §6; pipeline spec §1.5): GQA trains on train+valid and validates on testdev;
# captions train on every Karpathy train caption and generate once per val/test image.
TRAIN = {"vqa": 605_102, "gqa": 943_000 + 132_062, "nlvr": 86_373, "caption": 566_747}
VAL = {"vqa": ("greedy", 26_729), "gqa": ("greedy", 12_578), "nlvr": ("forward", 6_982),
       "caption": ("beam5", 5_000)}
TEST = {"vqa": ("greedy", 26_280), "nlvr": ("forward", 6_967), "caption": ("beam5", 5_000)}


def per_example(fn, batch_size: int, args, device) -> float:
    """Median seconds of ``fn`` over ``args.steps`` runs, divided by the batch size."""
    return statistics.median(timed(fn, args.steps, args.warmup, device)) / batch_size


def eval_fns(model, batch: dict, cast) -> dict:
    """The three validation workloads on ``batch``: greedy, beam-5 and one forward."""
    def gen(beams):
        def run():
            with torch.inference_mode(), cast():
                model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"], num_beams=beams, max_length=20,
                               min_length=20)  # always the full 20 tokens: the train steps before may make EOS likely
        return run

    def forward():
        with torch.inference_mode(), cast():
            model(batch["input_ids"], batch["vis_feats"], batch["boxes"], labels=batch["labels"])
    return {"greedy": gen(1), "beam5": gen(5), "forward": forward}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16 flags in ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def fast_kind(choice: str, device: torch.device) -> str:
    """``bf16`` (autocast, + TF32 on CUDA) or ``onednn`` (fp32, CPU) for ``--fast auto|bf16|onednn``."""
    if choice != "auto":
        return choice
    return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "onednn"


def measure_path(args, model, device, fast: str | None) -> dict:
    """Per-example seconds of training and of each validation workload on one path (``fast``: None is fp32
    eager, or ``bf16`` / ``onednn``)."""
    args.bf16 = fast == "bf16"
    precision = "tf32" if args.bf16 and device.type == "cuda" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    cast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else nullcontext
    if fast == "onednn":
        use_onednn(model)
    train_batch = make_batch(model, args.measure_batch, device, args.seed, args.feat_dim)
    out = {"train": per_example(train_step_fn(args, model, train_batch, device), args.measure_batch, args, device)}
    model.eval()
    gen_batch = make_batch(model, args.gen_batch, device, args.seed, args.feat_dim)
    for name, fn in eval_fns(model, gen_batch, cast).items():
        out[name] = per_example(fn, args.gen_batch, args, device)
    use_stock(model)
    return out


def hours(t: dict, epochs: int) -> dict:
    """The run's hours from per-example seconds ``t``: train and validation per epoch, test once."""
    train = sum(TRAIN.values()) * t["train"] * epochs
    val = sum(n * t[kind] for kind, n in VAL.values()) * epochs
    test = sum(n * t[kind] for kind, n in TEST.values())
    return {"train_h": round(train / 3600, 2), "val_h": round(val / 3600, 2), "test_h": round(test / 3600, 3),
            "total_h": round((train + val + test) / 3600, 2)}


def gemm_rate(device: torch.device, fast: str | None) -> float:
    """Measured FLOP/s of an n×n×n linear as the model runs it: fp32 ``F.linear``, under bf16 autocast for
    ``fast == "bf16"``, through oneDNN for ``"onednn"`` (n = 8192 on CUDA, 1024 on CPU; median of 5 after 2
    warm-ups)."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    layer = torch.nn.Linear(n, n, bias=False, device=device)
    layer.weight.data = b
    if fast == "onednn":
        use_onednn(layer)

    def run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast == "bf16"):
            layer(a)
    return 2 * n ** 3 / statistics.median(timed(run, 5, 2, device))


def train_flops(args, model, device) -> int:
    """Model FLOPs of one fp32 train step at the measured batch (forward + backward)."""
    args.bf16 = False
    use_stock(model)
    step = train_step_fn(args, model, make_batch(model, args.measure_batch, device, args.seed, args.feat_dim), device)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.split("\n")[0])
    parser.add_argument("--measure-batch", type=int, default=None,
                        help="train batch to time (default: published on CUDA, 8 on CPU; scaled linearly)")
    parser.add_argument("--gen-batch", type=int, default=8, help="validation batch to time (scaled per example)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fast", choices=("auto", "bf16", "onednn"), default="auto",
                        help="the fast path: bf16 autocast (+TF32 on CUDA) or fp32 --onednn (CPU); auto: see above")
    parser.set_defaults(steps=3, warmup=1)
    args = parse(parser, argv)
    model, device = build(args)
    published = PUBLISHED_BATCH[model.kind]
    args.measure_batch = args.measure_batch or (published if device.type == "cuda" else 8)
    fast = fast_kind(args.fast, device)
    if fast == "onednn" and device.type != "cpu":
        parser.error("--fast onednn is a CPU path")
    paths = {"fp32": measure_path(args, model, device, None), "fast": measure_path(args, model, device, fast)}
    flops = train_flops(args, model, device)
    peak = {"fp32": gemm_rate(device, None), "fast": gemm_rate(device, fast)}
    out = {"bench": "run_time", "backbone": args.backbone, "method": args.method, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "epochs": args.epochs, "train_batch_published": published,
           "train_batch_measured": args.measure_batch, "scaled_linearly": args.measure_batch != published,
           "gen_batch_measured": args.gen_batch,
           "fast_path": {"onednn": "fp32 --onednn"}.get(fast, "bf16 autocast" + (" + tf32" if device.type == "cuda"
                                                                                 else "")),
           "train_flops_per_example": flops // args.measure_batch}
    for name, t in paths.items():
        out[name] = {"s_per_example": {k: round(v, 5) for k, v in t.items()}, **hours(t, args.epochs),
                     "mfu": round(flops / args.measure_batch / t["train"] / peak[name], 3),
                     "gemm_gflops_measured": round(peak[name] / 1e9, 1)}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
