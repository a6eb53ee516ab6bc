"""Peak training memory of a configuration at a batch (issue 20 item 7), and the flags that fit a GPU size.

Usage:
  python bench/memory.py --backbone bart-base --method vl-pet-large --task gqa [--batch N] [--bf16]
      [--micro-batch-size M] [--gradient-checkpointing] [--device cpu|cuda] [--measure-batches 2,4]
  python bench/memory.py --backbone bart-base --table [--gpus 24,48,80]

Prints ONE JSON line (``--table``: one line per backbone, task and GPU size).

On CUDA it runs the trainer's step (``bench/train_step.py``'s: the task's loss, micro-batches, backward, clip,
``HFAdamW``) twice at the batch and reports ``torch.cuda.max_memory_allocated`` (and ``max_memory_reserved``).

On CPU (no allocator statistics) it is an estimate from accounting, in MiB:
* ``static``: every parameter and buffer (the frozen weights' bf16 copies under ``--bf16`` included), the trained
  parameters' gradients and the two AdamW moments;
* ``saved``: the bytes autograd keeps for the backward, collected with ``torch.autograd.graph.saved_tensors_hooks``
  during one forward, each storage counted once, parameters and buffers left out (already in ``static``). It is
  measured at ``--measure-batches`` (the task's shape: the same padded lengths as a published batch) and fitted as
  intercept + slope × batch, then evaluated at the chunk that is alive at once (``--micro-batch-size`` or the whole
  batch). With ``--gradient-checkpointing`` the saved bytes of each transformer layer are replaced by that layer's
  input (what the checkpoint keeps), plus one layer's saved bytes for its recompute in the backward;
* ``logits``: the loss's transients, two fp32 copies of the target rows' logits (the cast and its gradient);
* ``peak`` = static + saved + logits. It ignores the allocator's rounding and fragmentation and the backward's
  own temporaries (a few layer-sized buffers), so leave ~10 % headroom: ``--table`` requires peak ≤ 0.9 × GPU.

``--table`` evaluates, per backbone at its published batch, the tasks' per-task batches (BART 500 / 833 / 166 / 416,
T5 300 / 500 / 100 / 250), the options in the order of their cost (fp32; bf16; bf16 with micro-batches of
416 / 250 / 128 / 64 / 32; the same with gradient checkpointing) and prints, per GPU size, the first under which
every task fits (the flags are the run's, for all tasks): one line per task, then one for the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from transformers.modeling_layers import GradientCheckpointingLayer  # noqa: E402

from shapes import TASKS, make_task_batch, task_batch  # noqa: E402
from train_step import PUBLIC_BACKBONES, HIDDEN_BACKBONES, resolve_device, sync, train_step_fn  # noqa: E402
from vlpet.config import ModelConfig, SpeedConfig  # noqa: E402
from vlpet.flags.published import BASELINES, LST_METHODS, VLPET_METHODS, method_preset  # noqa: E402
from vlpet.models.build import build_model  # noqa: E402
from vlpet.models.presets import resolve_preset  # noqa: E402
from vlpet.tasks import get_task  # noqa: E402
from vlpet.train.speed import apply_model_options  # noqa: E402

MIB = 2 ** 20
MICRO = (416, 250, 128, 64, 32)


def build(args, bf16: bool, device: torch.device):
    torch.manual_seed(args.seed)
    kind = resolve_preset(args.backbone).kind
    model = build_model(ModelConfig(backbone=args.backbone, feat_dim=args.feat_dim), method_preset(args.method, kind))
    model = model.to(device)
    apply_model_options(model, SpeedConfig(bf16=bf16), device)
    return model


def static_bytes(model) -> int:
    """Parameters, buffers, and the trained parameters' gradient and two AdamW moments."""
    tensors = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
               for t in [*model.parameters(), *model.buffers()]}
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return sum(tensors.values()) + 3 * trained


def saved_bytes(model, task: str, size: int, device: torch.device, bf16: bool, args) -> dict:
    """One train-mode forward + loss at ``size``: the bytes saved for the backward (each storage once, parameters
    and buffers excluded), in total, per transformer layer, and the layers' input bytes; the target rows."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: set[int] = set()
    per_layer: dict[int, int] = {}
    inputs: dict[int, int] = {}
    stack: list[int] = []
    total = [0]

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in own and key not in seen and storage.nbytes():
            seen.add(key)
            total[0] += storage.nbytes()
            if stack:
                per_layer[stack[-1]] = per_layer.get(stack[-1], 0) + storage.nbytes()
        return t

    hooks = []
    for i, layer in enumerate(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)):
        def pre(_m, a, i=i):
            stack.append(i)
            inputs[i] = inputs.get(i, 0) + (a[0].numel() * a[0].element_size() if a and torch.is_tensor(a[0]) else 0)

        def post(*_):
            stack.pop()  # returns None: the output is left as it is

        hooks += [layer.register_forward_pre_hook(pre), layer.register_forward_hook(post)]
    batch = make_task_batch(model, task, size, device, args.seed, args.feat_dim)
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = get_task(task).loss(model, batch)
    finally:
        for h in hooks:
            h.remove()
    del loss
    rows = int(batch["target_ids_host"].ne(-100).sum())
    return {"total": total[0], "layers": sum(per_layer.values()), "max_layer": max(per_layer.values(), default=0),
            "layer_inputs": sum(inputs.values()), "rows": rows}


def fit(points: dict[int, dict]) -> dict:
    """Per key: (intercept, slope per example) through the measured batches (least squares)."""
    sizes = sorted(points)
    out = {}
    for key in points[sizes[0]]:
        xs, ys = torch.tensor(sizes, dtype=torch.float64), torch.tensor([points[s][key] for s in sizes],
                                                                         dtype=torch.float64)
        slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum())
        out[key] = (float(ys.mean()) - slope * float(xs.mean()), slope)
    return out


def estimate(model_static: int, fitted: dict, vocab: int, batch: int, micro: int, checkpointing: bool) -> dict:
    """The CPU estimate (MiB) of a configuration from the fitted accounting."""
    chunk = min(batch, micro) if micro else batch

    def at(key):
        a, b = fitted[key]
        return max(0.0, a + b * chunk)

    saved = at("total")
    if checkpointing:
        saved = saved - at("layers") + at("layer_inputs") + at("max_layer")
    logits = 2 * at("rows") * vocab * 4
    return {"static_mib": round(model_static / MIB), "saved_mib": round(saved / MIB), "logits_mib": round(logits / MIB),
            "peak_mib": round((model_static + saved + logits) / MIB), "chunk": chunk}


def measure_cpu(args, task: str, bf16: bool, device: torch.device) -> tuple[int, dict, int]:
    model = build(args, bf16, device)
    points = {b: saved_bytes(model, task, b, device, bf16, args) for b in args.measure_batches}
    return static_bytes(model), fit(points), model.config.vocab_size


def measure_cuda(args, device: torch.device) -> dict:
    model = build(args, args.bf16, device)
    model.train()
    if args.gradient_checkpointing:
        apply_model_options(model, SpeedConfig(gradient_checkpointing=True), device)
    batch = make_task_batch(model, args.task, args.batch, device, args.seed, args.feat_dim)
    torch.cuda.reset_peak_memory_stats(device)
    step = train_step_fn(args, model, batch, device)
    for _ in range(2):  # the second step has the AdamW moments alive from the start
        step()
    sync(device)
    return {"peak_mib": round(torch.cuda.max_memory_allocated(device) / MIB),
            "reserved_mib": round(torch.cuda.max_memory_reserved(device) / MIB), "method": "max_memory_allocated"}


def table(args, device: torch.device) -> None:
    """Per GPU size, the first option (in the order of their cost) under which every task's step fits; one line per
    task with its estimate under that option, then one line for the run."""
    kind = resolve_preset(args.backbone).kind
    batches = {task: task_batch(kind, task) for task in TASKS}
    cache = {(task, bf16): measure_cpu(args, task, bf16, device) for task in TASKS for bf16 in (False, True)}
    largest = max(batches.values())
    options = [(False, 0, False), (True, 0, False)] + [(True, m, False) for m in MICRO if m < largest] + \
              [(True, m, True) for m in (0, *MICRO) if m < largest]
    for gpu in args.gpus:
        chosen = None
        for bf16, micro, ckpt in options:
            ests = {task: estimate(*cache[(task, bf16)], batches[task], micro, ckpt) for task in TASKS}
            if max(e["peak_mib"] for e in ests.values()) <= 0.9 * gpu * 1024:
                chosen = (bf16, micro, ckpt, ests)
                break
        base = {"bench": "memory_table", "backbone": args.backbone, "method": args.method, "gpu_gb": gpu,
                "device": str(device), "estimate": "cpu accounting"}
        if chosen is None:
            print(json.dumps({**base, "fits": False}), flush=True)
            continue
        bf16, micro, ckpt, ests = chosen
        flags = " ".join(f for f in ("--bf16" if bf16 else "", f"--micro_batch_size {micro}" if micro else "",
                                     "--gradient_checkpointing" if ckpt else "") if f) or "(none: fp32)"
        for task, est in ests.items():
            print(json.dumps({**base, "task": task, "batch": batches[task], "flags": flags, **est}), flush=True)
        print(json.dumps({**base, "task": "run", "fits": True, "flags": flags,
                          "peak_mib": max(e["peak_mib"] for e in ests.values())}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="bart-base")
    p.add_argument("--method", default="vl-pet-large", choices=VLPET_METHODS + BASELINES + LST_METHODS)
    p.add_argument("--task", default="gqa", choices=TASKS)
    p.add_argument("--batch", type=int, default=None, help="default: the task's published per-task batch")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--micro-batch-size", type=int, default=0)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--measure-batches", default="2,4", help="CPU: the batches the accounting is fitted on")
    p.add_argument("--table", action="store_true", help="the flags that fit each --gpus size, per task")
    p.add_argument("--gpus", default="24,48,80", help="GPU sizes in GB for --table")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feat-dim", type=int, default=2048, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.backbone not in PUBLIC_BACKBONES + HIDDEN_BACKBONES:
        p.error(f"--backbone must be one of {', '.join(PUBLIC_BACKBONES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.measure_batches = sorted({int(b) for b in args.measure_batches.split(",")})
    args.gpus = [int(g) for g in args.gpus.split(",")]
    if len(args.measure_batches) < 2:
        p.error("--measure-batches needs two batch sizes or more (a line is fitted)")
    device = resolve_device(args.device)
    if args.table:
        table(args, device)
        return 0
    kind = resolve_preset(args.backbone).kind
    args.batch = args.batch or task_batch(kind, args.task)
    out = {"bench": "memory", "backbone": args.backbone, "method": args.method, "task": args.task, "batch": args.batch,
           "bf16": args.bf16, "micro_batch_size": args.micro_batch_size,
           "gradient_checkpointing": args.gradient_checkpointing, "device": str(device)}
    if device.type == "cuda":
        out.update(measure_cuda(args, device), device_name=torch.cuda.get_device_name(device))
    else:
        static, fitted, vocab = measure_cpu(args, args.task, args.bf16, device)
        out.update(estimate(static, fitted, vocab, args.batch, args.micro_batch_size, args.gradient_checkpointing),
                   method_used="cpu accounting (saved_tensors_hooks), fitted on batches " +
                   ",".join(map(str, args.measure_batches)),
                   saved_mib_per_example=round(fitted["total"][1] / MIB, 2))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
