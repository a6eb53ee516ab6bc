"""Training-step benchmark: median seconds of one optimisation step of a full-size VL-BART / VL-T5 with a PET method.

Usage: ``python bench/train_step.py --backbone {bart-base,t5-base} --method M [--task vqa|gqa|nlvr|caption|fixed]
[--batch N] [--bf16] [--tf32] [--onednn] [--compile] [--micro-batch-size M] [--gradient-checkpointing] [--steps N]
[--warmup W] [--threads T] [--device auto|cpu|cuda]``. Prints ONE JSON line.

The model is the full-size preset with random weights (no download), the method's published configuration
(``vlpet.flags.published.method_preset``), in train mode (dropout on). The batch is the trainer's for ``--task``
(``bench/shapes.py``): the per-task batch of the published ``--batch_size`` (BART 500: VQA 500, GQA 833, NLVR2 166,
caption 416; T5 300: 300 / 500 / 100 / 250; on CPU 8) unless ``--batch`` is given, its text and target lengths,
NLVR2's two images, the caption targets padded to 40. ``--task fixed`` is the earlier benchmark shape (20 text tokens, 36 visual
tokens, 20-token targets, ``--batch`` default 8), kept to compare with the older tables. One step is what
``train_epoch`` does: the task's official loss (``Task.loss``: the LM head only at the target positions), backward
(in chunks with ``--micro-batch-size``), ``clip_grad_norm_(5)``, the trainer's ``HFAdamW`` step over the official
weight-decay groups, grads to None. ``--warmup`` steps are run first and not timed; on CUDA every step is
synchronised. ``--bf16`` is the trainer's: autocast, plus the frozen Linears' bf16 copies; ``--tf32``, ``--onednn``,
``--compile``, ``--gradient-checkpointing`` are the trainer's options of the same names (``vlpet.train.speed``).
``compile`` in the output says whether the compiled forward actually ran (false after a fall-back to eager),
with ``unique_graphs`` / ``graph_breaks`` and ``first_step_s`` (the first warm-up step, compilation included).

Glibc allocator: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`` (faster CPU steps: fewer page faults from freed and re-mapped buffers) only take
effect if set before the process starts. When either is missing from the environment, the script sets both and
re-executes itself once (``os.execv``, before torch is imported, so this costs a few milliseconds). A value the caller
already set is kept; ``--no-malloc-env`` runs with whatever the environment has. The JSON line reports the values used.

Output keys: bench, backbone, method, device, dtype, precision (fp32 / tf32 / bf16), task, batch, text_len,
vis_tokens, target_len, target_tokens, compile, compile_requested, unique_graphs and graph_breaks (with --compile),
first_step_s, micro_batch_size, gradient_checkpointing, threads, steps, warmup, step_s_median, step_s_min,
step_s_max, samples_per_s, peak_rss_mb (the process's peak resident memory, model build included), rss_after_build_mb (resident memory before the first step), cuda_peak_alloc_mb and
cuda_peak_reserved_mb (``max_memory_allocated`` / ``max_memory_reserved`` after the build; null on CPU),
trainable_params, total_params, loss, malloc_env, torch.

Hidden options for tests: ``--backbone tiny-bart`` / ``tiny-t5`` (the golden fixtures' tiny sizes) and ``--feat-dim``.
"""

from __future__ import annotations

import os
import sys

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
_REEXEC_MARK = "VLPET_BENCH_REEXEC"


def ensure_malloc_env(argv: list[str]) -> None:
    """Re-exec this interpreter once with the glibc allocator settings if they are not in the environment."""
    if "--no-malloc-env" in argv or os.environ.get(_REEXEC_MARK):
        return
    missing = {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
    if not missing:
        return
    os.environ.update(missing)
    os.environ[_REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    # orig_argv keeps interpreter flags (-X, -u, ...) as well as the script and its arguments.
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


if __name__ == "__main__":
    ensure_malloc_env(sys.argv[1:])

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from vlpet.config import ModelConfig, SpeedConfig  # noqa: E402
from vlpet.train.optim import HFAdamW, param_groups  # noqa: E402
from vlpet.models.build import build_model  # noqa: E402
from vlpet.models.onednn import use_onednn  # noqa: E402
from vlpet.tasks import get_task  # noqa: E402
from vlpet.train.loop import _loss_and_backward  # noqa: E402
from vlpet.train.speed import CompiledForward, apply_model_options, compile_model, compile_stats  # noqa: E402
from shapes import TASKS, describe, make_task_batch, task_batch  # noqa: E402
from vlpet.models.presets import resolve_preset  # noqa: E402
from vlpet.flags.published import BASELINES, LST_METHODS, VLPET_METHODS, method_preset  # noqa: E402
from vlpet.pet.trainable import count_parameters  # noqa: E402

PUBLIC_BACKBONES = ("bart-base", "t5-base")
HIDDEN_BACKBONES = ("tiny-bart", "tiny-t5")
TEXT_LEN, TARGET_LEN, GRID, VIS_TOKENS = 20, 20, 49, 36


def make_parser(description: str) -> argparse.ArgumentParser:
    """The options shared by bench/train_step.py and bench/generate.py."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--backbone", default="bart-base", metavar="{bart-base,t5-base}",
                   help="full-size preset, random weights")
    p.add_argument("--method", default="vl-pet-large", choices=VLPET_METHODS + BASELINES + LST_METHODS,
                   help="lora, adapter, prompt_tuning, lst: T5 only (the Ladder-Side-Tuning configurations)")
    p.add_argument("--bf16", action="store_true", help="torch.autocast(bfloat16) around the model")
    p.add_argument("--onednn", action="store_true",
                   help="CPU fp32: the model's nn.Linear forwards through oneDNN (vlpet.models.onednn)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model's forward (vlpet.train.speed; the warm-up includes compilation)")
    p.add_argument("--steps", type=int, default=10, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first")
    p.add_argument("--task", default="vqa", choices=TASKS + ("fixed",),
                   help="the trainer's shapes for this task (bench/shapes.py); fixed: 20/36/20 tokens, batch 8")
    p.add_argument("--batch", type=int, default=None,
                   help="default: the task's published per-task batch on CUDA, 8 on CPU")
    p.add_argument("--tf32", action="store_true", help="CUDA: TF32 matmuls (the trainer's --tf32)")
    p.add_argument("--micro-batch-size", type=int, default=0, help="the trainer's --micro_batch_size")
    p.add_argument("--gradient-checkpointing", action="store_true", help="the trainer's --gradient_checkpointing")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-malloc-env", action="store_true",
                   help="do not set the glibc allocator variables (see the module docstring)")
    p.add_argument("--feat-dim", type=int, default=2048, help=argparse.SUPPRESS)
    p.add_argument("--compile-backend", default="inductor", help=argparse.SUPPRESS)  # aot_eager: CPU smoke runs
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.backbone not in PUBLIC_BACKBONES + HIDDEN_BACKBONES:
        parser.error(f"--backbone must be one of {', '.join(PUBLIC_BACKBONES)}, got {args.backbone!r}")
    if args.steps < 1 or args.warmup < 0 or (args.batch is not None and args.batch < 1):
        parser.error("--steps and --batch must be >= 1, --warmup >= 0")
    kind = resolve_preset(args.backbone).kind
    if args.batch is None:  # the published per-task batch on a GPU; 8 on CPU (a 500-example step takes minutes)
        cpu = resolve_device(args.device).type == "cpu"
        args.batch = 8 if args.task == "fixed" or cpu else task_batch(kind, args.task)
    return args


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def setup(args: argparse.Namespace):
    """Seed, threads, device; build the model and a fixed random batch. Returns (model, batch dict, device)."""
    model, device = build(args)
    batch = input_batch(args, model, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return model, batch, device


def build(args: argparse.Namespace):
    """Seed, threads, device and the model with the method's published configuration: (model, device)."""
    torch.manual_seed(args.seed)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    kind = resolve_preset(args.backbone).kind
    model = build_model(ModelConfig(backbone=args.backbone, feat_dim=args.feat_dim), method_preset(args.method, kind))
    if getattr(args, "onednn", False):
        use_onednn(model)
    model = model.to(device)
    torch.backends.cuda.matmul.fp32_precision = "tf32" if getattr(args, "tf32", False) else "ieee"
    apply_model_options(model, speed_config(args), device)
    if getattr(args, "compile", False):
        compile_model(model, SpeedConfig(compile=True, compile_backend=getattr(args, "compile_backend", "inductor")),
                      device)
    return model, device


def speed_config(args: argparse.Namespace) -> SpeedConfig:
    """The trainer's options of these flags (the bf16 frozen copies, checkpointing; onednn is applied by build)."""
    return SpeedConfig(bf16=getattr(args, "bf16", False), micro_batch_size=getattr(args, "micro_batch_size", 0),
                       gradient_checkpointing=getattr(args, "gradient_checkpointing", False))


def input_batch(args: argparse.Namespace, model, device: torch.device, size: int | None = None) -> dict:
    """The benchmark batch: the trainer's for ``args.task`` (``bench/shapes.py``), or the fixed 20/36/20 shape."""
    size = size or args.batch
    if getattr(args, "task", "fixed") == "fixed":
        batch = make_batch(model, size, device, args.seed, args.feat_dim)
        batch.update(task="vqa", target_ids=batch["labels"], target_ids_host=batch["labels"].cpu())
        batch["scores"] = torch.ones(size, device=device)
        return batch
    return make_task_batch(model, args.task, size, device, args.seed, args.feat_dim)


def make_batch(model, size: int, device: torch.device, seed: int = 0, feat_dim: int = 2048) -> dict:
    """``size`` samples of 20 random text tokens, a 7x7 grid of random features, zero boxes, 20-token targets."""
    cfg = model.config
    low, high = 5, min(cfg.vocab_size, 32000)  # clear of pad/bos/eos/unk, inside every tokenizer's range
    g = torch.Generator().manual_seed(seed)
    batch = {
        "input_ids": torch.randint(low, high, (size, TEXT_LEN), generator=g),
        "vis_feats": torch.randn(size, GRID, feat_dim, generator=g),
        "boxes": torch.zeros(size, GRID, 4),
        "labels": torch.randint(low, high, (size, TARGET_LEN), generator=g),
    }
    batch["labels"][:, -1] = cfg.eos_token_id
    return {k: v.to(device) for k, v in batch.items()}


def current_rss_mb() -> float | None:
    """Resident set size of this process now (Linux ``/proc/self/status``), None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return round(int(line.split()[1]) / 1024, 1)


def autocast(args: argparse.Namespace, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, n: int, warmup: int, device: torch.device) -> list[float]:
    """Run ``fn`` ``warmup`` times, then time ``n`` runs; seconds per run."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def report(bench: str, args: argparse.Namespace, model, device: torch.device, times: list[float], **extra) -> dict:
    """The common JSON fields; ``extra`` is merged in."""
    trainable, total = count_parameters(model)
    median = statistics.median(times)
    cuda = device.type == "cuda"
    peak_cuda = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    reserved = torch.cuda.max_memory_reserved(device) / 2**20 if cuda else None
    forward = model.__dict__.get("forward")
    ran = isinstance(forward, CompiledForward) and not forward.failed
    shape = extra.pop("shape", None) or {"task": "fixed", "batch": args.batch, "text_len": TEXT_LEN, "images": 1,
                                         "target_len": TARGET_LEN}
    tf32 = cuda and torch.backends.cuda.matmul.fp32_precision == "tf32"
    return {
        "bench": bench, "backbone": args.backbone, "method": args.method, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "dtype": "bf16-autocast" if args.bf16 else "fp32",
        "precision": "bf16" if args.bf16 else ("tf32" if tf32 else "fp32"),
        "onednn": bool(getattr(args, "onednn", False)),
        "compile": ran, "compile_requested": bool(getattr(args, "compile", False)),
        **({**compile_stats()} if getattr(args, "compile", False) else {}),
        "micro_batch_size": getattr(args, "micro_batch_size", 0),
        "gradient_checkpointing": bool(getattr(args, "gradient_checkpointing", False)),
        **shape, "vis_tokens": VIS_TOKENS * shape.get("images", 1), "threads": torch.get_num_threads(),
        "steps": args.steps, "warmup": args.warmup, **extra,
        f"{bench}_s_median": round(median, 4), f"{bench}_s_min": round(min(times), 4),
        f"{bench}_s_max": round(max(times), 4), "samples_per_s": round(args.batch / median, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cuda_peak_alloc_mb": None if peak_cuda is None else round(peak_cuda, 1),
        "cuda_peak_reserved_mb": None if reserved is None else round(reserved, 1),
        "trainable_params": trainable, "total_params": total,
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV}, "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(make_parser(__doc__.split("\n")[0]), argv)
    model, batch, device = setup(args)
    rss_built = current_rss_mb()
    last = {}
    step = train_step_fn(args, model, batch, device, last)
    sync(device)
    start = time.perf_counter()
    step()  # the first step: compilation, the optimizer state, the allocator's first blocks
    sync(device)
    first = time.perf_counter() - start
    times = timed(step, args.steps, max(0, args.warmup - 1), device)
    out = report("step", args, model, device, times, loss=round(float(last["loss"]), 4), rss_after_build_mb=rss_built,
                 first_step_s=round(first, 3), shape={**describe(batch), "task": args.task})
    print(json.dumps(out), flush=True)
    return 0


def train_step_fn(args: argparse.Namespace, model, batch: dict, device: torch.device, last: dict | None = None):
    """One optimisation step as ``train_epoch`` runs it, as a closure (train mode); ``last["loss"]`` receives the
    detached loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = HFAdamW(param_groups(model, 0.01), lr=1e-4, eps=1e-6)
    last = {} if last is None else last
    task = get_task(batch["task"])

    def step():
        with autocast(args, device):
            loss = _loss_and_backward(model, task, batch, getattr(args, "micro_batch_size", 0))
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        optimizer.zero_grad()
        last["loss"] = loss.detach()

    return step


if __name__ == "__main__":
    sys.exit(main())
