"""Training-step benchmark: median seconds of one optimisation step of a full-size VL-BART / VL-T5 with a PET method.

Usage: ``python bench/train_step.py --backbone {bart-base,t5-base} --method M [--bf16] [--onednn] [--compile] [--steps N]
[--warmup W] [--batch 8] [--threads T] [--device auto|cpu|cuda]``. Prints ONE JSON line.

The model is the full-size preset with random weights (no download), the method's published configuration
(``vlpet.flags.published.method_preset``), in train mode (dropout on). The batch has ``--batch`` samples of 20 text tokens,
49 raw grid features (pooled by the model to 36 visual tokens) with zero boxes, and 20-token targets. One step is
forward, ``sample_mean_loss``, backward, ``clip_grad_norm_(5)`` on the trainable parameters, the trainer's optimizer
step (``HFAdamW``, the HF 4.2.1 update rule, over the official weight-decay groups), ``zero_grad()`` (grads to None,
as the trainer does). ``--warmup`` steps are run first and not timed; on CUDA
every step is synchronised. ``--bf16`` wraps forward and loss in ``torch.autocast(bfloat16)`` (weights stay fp32);
``--onednn`` and ``--compile`` are the trainer's options of the same names (``vlpet.train.speed``).

Glibc allocator: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`` (faster CPU steps: fewer page faults from freed and re-mapped buffers) only take
effect if set before the process starts. When either is missing from the environment, the script sets both and
re-executes itself once (``os.execv``, before torch is imported, so this costs a few milliseconds). A value the caller
already set is kept; ``--no-malloc-env`` runs with whatever the environment has. The JSON line reports the values used.

Output keys: bench, backbone, method, device, dtype, batch, text_len, vis_tokens, target_len, threads, steps,
warmup, step_s_median, step_s_min, step_s_max, samples_per_s, peak_rss_mb (the process's peak resident memory,
model build included), rss_after_build_mb (resident memory before the first step), cuda_peak_alloc_mb (null on CPU),
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
from vlpet.losses import sample_mean_loss  # noqa: E402
from vlpet.train.optim import HFAdamW, param_groups  # noqa: E402
from vlpet.models.build import build_model  # noqa: E402
from vlpet.models.onednn import use_onednn  # noqa: E402
from vlpet.train.speed import compile_model  # noqa: E402
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
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-malloc-env", action="store_true",
                   help="do not set the glibc allocator variables (see the module docstring)")
    p.add_argument("--feat-dim", type=int, default=2048, help=argparse.SUPPRESS)
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.backbone not in PUBLIC_BACKBONES + HIDDEN_BACKBONES:
        parser.error(f"--backbone must be one of {', '.join(PUBLIC_BACKBONES)}, got {args.backbone!r}")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1, --warmup >= 0")
    return args


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def setup(args: argparse.Namespace):
    """Seed, threads, device; build the model and a fixed random batch. Returns (model, batch dict, device)."""
    model, device = build(args)
    batch = make_batch(model, args.batch, device, args.seed, args.feat_dim)
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
    if getattr(args, "compile", False):
        compile_model(model, SpeedConfig(compile=True), device)
    return model, device


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
    peak_cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "bench": bench, "backbone": args.backbone, "method": args.method, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": "bf16-autocast" if args.bf16 else "fp32", "onednn": bool(getattr(args, "onednn", False)),
        "compile": bool(getattr(args, "compile", False)),
        "batch": args.batch, "text_len": TEXT_LEN,
        "vis_tokens": VIS_TOKENS, "target_len": TARGET_LEN, "threads": torch.get_num_threads(),
        "steps": args.steps, "warmup": args.warmup, **extra,
        f"{bench}_s_median": round(median, 4), f"{bench}_s_min": round(min(times), 4),
        f"{bench}_s_max": round(max(times), 4), "samples_per_s": round(args.batch / median, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cuda_peak_alloc_mb": None if peak_cuda is None else round(peak_cuda, 1),
        "trainable_params": trainable, "total_params": total,
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV}, "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(make_parser(__doc__.split("\n")[0]), argv)
    model, batch, device = setup(args)
    rss_built = current_rss_mb()
    last = {}
    step = train_step_fn(args, model, batch, device, last)
    times = timed(step, args.steps, args.warmup, device)
    out = report("step", args, model, device, times, loss=round(float(last["loss"]), 4), rss_after_build_mb=rss_built)
    print(json.dumps(out), flush=True)
    return 0


def train_step_fn(args: argparse.Namespace, model, batch: dict, device: torch.device, last: dict | None = None):
    """One optimisation step as a closure (train mode); ``last["loss"]`` receives the detached loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = HFAdamW(param_groups(model, 0.01), lr=1e-4, eps=1e-6)
    last = {} if last is None else last

    def step():
        with autocast(args, device):
            logits = model(batch["input_ids"], batch["vis_feats"], batch["boxes"], labels=batch["labels"]).logits
            loss = sample_mean_loss(logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        optimizer.zero_grad()
        last["loss"] = loss.detach()

    return step


if __name__ == "__main__":
    sys.exit(main())
