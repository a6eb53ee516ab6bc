"""Estimated hours of the published 20-epoch multi-task image-text run (VQA, GQA, NLVR2, COCO caption) on this device.

Usage: ``python bench/run_time.py --backbone {bart-base,t5-base} --method vl-pet-large --device cuda|cpu
[--paths fp32,tf32,fast] [--measure-batch N] [--gen-batch N] [--epochs 20] [--steps 3] [--warmup 1] [--threads T]``.
Prints ONE JSON line.

Paths: ``fp32`` (IEEE fp32 eager, the faithful default), ``tf32`` (CUDA only: ``--tf32``), ``fast`` (``--fast``;
``auto``: bf16 autocast with the frozen weights' bf16 copies, plus TF32, on CUDA and on CPUs with native bf16
matmuls (AMX / AVX512-BF16 in ``/proc/cpuinfo``); elsewhere fp32 with ``--onednn``, since emulated bf16 is slower).
Per path and per task, at the trainer's shapes (``bench/shapes.py``):
* the train step (the trainer's loss and update, as ``bench/train_step.py``) at the task's published batch (BART
  500 / 833 / 166 / 416, T5 300 / 500 / 100 / 250). ``--measure-batch`` times a smaller batch instead and scales it
  linearly (said in ``scaled_linearly``; the CPU default is 8);
* validation at the published settings (pipeline spec §5.1) and evaluation batches (the same per-task sizes): VQA
  and GQA greedy, COCO captions beam 5 (max_length 20), NLVR2 one forward (``--gen-batch`` overrides the batch).
Generation is forced to the full 20 tokens (``min_length``: random weights), an upper bound for the short answers.
The per-example times are multiplied by the real split sizes (data-prep spec §6, pipeline spec §1.5): train every
epoch, validation every epoch, test once after the last.

MFU: the epoch's model FLOPs (``torch.utils.flop_counter`` on each task's fp32 step) over its time, against the
peak of the precision the path's matmuls run in: ``mfu_datasheet`` against the card's dense datasheet peak (known
cards only: H100 SXM/PCIe, H200, A100, L40S; null elsewhere) and ``mfu_measured`` against this device's measured
8192³ (CPU: 1024³) GEMM rate with the same precision set (IEEE fp32, TF32 or bf16 autocast; each measurement sets
and restores ``fp32_precision`` itself).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import ensure_malloc_env  # noqa: E402

if __name__ == "__main__":
    ensure_malloc_env(sys.argv[1:])

import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from shapes import TASKS, make_task_batch, task_batch  # noqa: E402
from train_step import build, make_parser, parse, timed, train_step_fn  # noqa: E402
from vlpet.config import SpeedConfig  # noqa: E402
from vlpet.models.onednn import use_onednn  # noqa: E402
from vlpet.train.speed import apply_model_options  # noqa: E402

# Examples per split (data-prep spec §6; pipeline spec §1.5): GQA trains on train+valid and validates on testdev;
# captions train on every Karpathy train caption and generate once per val/test image.
TRAIN = {"vqa": 605_102, "gqa": 943_000 + 132_062, "nlvr": 86_373, "caption": 566_747}
VAL = {"vqa": ("greedy", 26_729), "gqa": ("greedy", 12_578), "nlvr": ("forward", 6_982),
       "caption": ("beam5", 5_000)}
TEST = {"vqa": ("greedy", 26_280), "nlvr": ("forward", 6_967), "caption": ("beam5", 5_000)}
# Dense (no sparsity) datasheet peaks, TFLOP/s: (fp32, tf32, bf16). Matched on torch.cuda.get_device_name.
DATASHEET = {"H100 SXM": (67, 495, 989), "H100 80GB HBM3": (67, 495, 989), "H100 PCIe": (51, 378, 756),
             "H100 NVL": (60, 418, 835), "H200": (67, 495, 989), "A100": (19.5, 156, 312), "L40S": (91.6, 183, 362)}


def datasheet_peak(device: torch.device, precision: str) -> float | None:
    """FLOP/s of this card's datasheet for ``precision`` (fp32 / tf32 / bf16), None when the card is unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in DATASHEET.items():
        if key in name:
            return peaks[("fp32", "tf32", "bf16").index(precision)] * 1e12
    return None


def per_example(fn, batch_size: int, args, device) -> float:
    """Median seconds of ``fn`` over ``args.steps`` runs, divided by the batch size."""
    return statistics.median(timed(fn, args.steps, args.warmup, device)) / batch_size


def eval_fn(model, batch: dict, kind: str, cast):
    """One validation workload on ``batch``: ``greedy``, ``beam5`` or ``forward`` (NLVR2's)."""
    def run():
        with torch.inference_mode(), cast():
            if kind == "forward":
                start = batch["target_ids"][:, :1].clamp(min=0)
                model(batch["input_ids"], batch["vis_feats"], batch["boxes"], decoder_input_ids=start)
            else:  # always the full 20 tokens: the train steps before may make EOS likely
                model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"], num_beams=5 if kind == "beam5"
                               else 1, max_length=20, min_length=20)
    return run


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


def path_settings(path: str, fast: str, device: torch.device) -> tuple[bool, str, bool]:
    """(bf16 autocast, fp32 matmul precision, onednn) of a path."""
    if path == "fp32":
        return False, "ieee", False
    if path == "tf32":
        return False, "tf32", False
    if fast == "onednn":
        return False, "ieee", True
    return True, "tf32" if device.type == "cuda" else "ieee", False


def matmul_precision(path: str, fast: str) -> str:
    """The precision the path's matmuls run in, for its MFU peak."""
    if path == "fast" and fast == "bf16":
        return "bf16"
    return "tf32" if path == "tf32" else "fp32"


def measure_path(args, base, device, path: str, fast: str) -> dict:
    """Per-example seconds, per task, of the train step and of its validation workload (VAL's kind) on one path:
    ``{"train": {task: s}, "val": {task: s}}``."""
    args.bf16, precision, onednn = path_settings(path, fast, device)
    torch.backends.cuda.matmul.fp32_precision = precision
    model = copy.deepcopy(base)  # each path gets its own speed options (bf16 copies, oneDNN) on the same weights
    apply_model_options(model, SpeedConfig(bf16=args.bf16), device)
    if onednn:
        use_onednn(model)
    cast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else nullcontext
    train, val = {}, {}
    for task in TASKS:
        size = args.measure_batch or task_batch(model.kind, task)
        batch = make_task_batch(model, task, size, device, args.seed, args.feat_dim)
        train[task] = per_example(train_step_fn(args, model, batch, device), size, args, device)
    model.eval()
    for task, (kind, _) in VAL.items():
        size = args.gen_batch or task_batch(model.kind, task)
        batch = make_task_batch(model, task, size, device, args.seed, args.feat_dim)
        val[task] = per_example(eval_fn(model, batch, kind, cast), size, args, device)
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    return {"train": train, "val": val}


def hours(t: dict, epochs: int) -> dict:
    """The run's hours from per-example seconds ``t``: train and validation per epoch, test once."""
    train = sum(n * t["train"][task] for task, n in TRAIN.items()) * epochs
    val = sum(n * t["val"][task] for task, (_, n) in VAL.items()) * epochs
    test = sum(n * t["val"][task] for task, (_, n) in TEST.items())
    return {"train_h": round(train / 3600, 2), "val_h": round(val / 3600, 2), "test_h": round(test / 3600, 3),
            "total_h": round((train + val + test) / 3600, 2)}


def gemm_rate(device: torch.device, precision: str) -> float:
    """Measured FLOP/s of an n×n×n linear in ``precision``: fp32 (IEEE), tf32, bf16 (autocast) or onednn (fp32
    through oneDNN); n = 8192 on CUDA, 1024 on CPU; median of 5 after 2 warm-ups. Sets and restores the matmul
    precision itself."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    layer = torch.nn.Linear(n, n, bias=False, device=device)
    layer.weight.data = b
    if precision == "onednn":
        use_onednn(layer)
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "tf32" if precision == "tf32" else "ieee"

    def run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            layer(a)
    try:
        return 2 * n ** 3 / statistics.median(timed(run, 5, 2, device))
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


def train_flops(args, model, device) -> dict:
    """Model FLOPs per example of each task's fp32 train step at the measured batch (forward + backward)."""
    args.bf16 = False
    out = {}
    for task in TASKS:
        size = args.measure_batch or task_batch(model.kind, task)
        step = train_step_fn(args, model, make_task_batch(model, task, size, device, args.seed, args.feat_dim), device)
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        out[task] = counter.get_total_flops() / size
    return out


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.split("\n")[0])
    parser.add_argument("--measure-batch", type=int, default=None,
                        help="train batch to time (default: the published per-task batch on CUDA, 8 on CPU; scaled "
                             "linearly)")
    parser.add_argument("--gen-batch", type=int, default=None,
                        help="evaluation batch to time (default: the published per-task batch on CUDA, 8 on CPU)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--paths", default=None, help="comma-separated of fp32, tf32 (CUDA), fast (default: all)")
    parser.add_argument("--fast", choices=("auto", "bf16", "onednn"), default="auto",
                        help="the fast path: bf16 autocast (+TF32 on CUDA) or fp32 --onednn (CPU); auto: see above")
    parser.set_defaults(steps=3, warmup=1)
    args = parse(parser, argv)
    model, device = build(args)
    cuda = device.type == "cuda"
    if not cuda:
        args.measure_batch = args.measure_batch or 8
        args.gen_batch = args.gen_batch or 8
    fast = fast_kind(args.fast, device)
    if fast == "onednn" and cuda:
        parser.error("--fast onednn is a CPU path")
    paths = (args.paths or ("fp32,tf32,fast" if cuda else "fp32,fast")).split(",")
    if "tf32" in paths and not cuda:
        parser.error("--paths tf32 needs CUDA")
    flops = train_flops(args, model, device)
    epoch_flops = sum(TRAIN[task] * f for task, f in flops.items())
    out = {"bench": "run_time", "backbone": args.backbone, "method": args.method, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
           "threads": torch.get_num_threads(), "epochs": args.epochs,
           "train_batch_published": {t: task_batch(model.kind, t) for t in TASKS},
           "train_batch_measured": args.measure_batch or "published",
           "scaled_linearly": args.measure_batch is not None,
           "gen_batch_measured": args.gen_batch or "published",
           "fast_path": {"onednn": "fp32 --onednn"}.get(fast, "bf16 autocast + frozen bf16 copies" +
                                                        (" + tf32" if cuda else "")),
           "train_flops_per_example": {t: int(f) for t, f in flops.items()}}
    for path in paths:
        t = measure_path(args, model, device, path, fast)
        epoch_s = sum(TRAIN[task] * t["train"][task] for task in TASKS)
        precision = matmul_precision(path, fast)
        measured = gemm_rate(device, "onednn" if path == "fast" and fast == "onednn" else precision)
        sheet = datasheet_peak(device, precision)
        out[path] = {"s_per_example": {k: {task: round(v, 6) for task, v in d.items()} for k, d in t.items()},
                     **hours(t, args.epochs), "matmul_precision": precision,
                     "mfu_measured": round(epoch_flops / epoch_s / measured, 3),
                     "mfu_datasheet": None if sheet is None else round(epoch_flops / epoch_s / sheet, 3),
                     "gemm_gflops_measured": round(measured / 1e9, 1),
                     "peak_gflops_datasheet": None if sheet is None else round(sheet / 1e9)}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
