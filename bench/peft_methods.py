"""Cost of every peft recipe beside VL-PET: trainable parameters, peak training memory and step time, one sitting.

Usage: ``python bench/peft_methods.py [--backbone bart-base] [--batch 300] [--steps 5] [--warmup 2] [--threads T]
[--device auto] [--only dora,lora,...]``. Prints one JSON line per method, then a markdown table.

Each method runs in its own process (so that ``peak_rss_mb``, the process's peak resident memory, model build
included, and ``cuda_peak_alloc_mb`` belong to that method alone): the full-size preset with random weights (no
download), VL-PET-large and single_lora with their published configurations, and every ``scripts/peft/*.json``
through ``--peft_config`` (with the file's DoRA switches). One step is the trainer's (``bench/train_step.py``):
forward, loss, backward, clip 5, ``HFAdamW`` step, grads to None, plus AdaLoRA's regulariser and rank-schedule hook
(``TunerHooks``) as the train loop runs them. AdaLoRA's ``total_step`` (the run's length) is set to 10000.
The published batch is 300 (DoRA's script; VL-PET's 500); on a small CPU pass a smaller ``--batch`` and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

PUBLISHED = ("vl-pet-large", "single_lora", "mtl_lora")


def methods() -> list[str]:
    return list(PUBLISHED) + sorted(p.stem for p in (REPO / "scripts" / "peft").glob("*.json"))


def one(args: argparse.Namespace) -> dict:
    import torch

    import train_step as ts
    from vlpet.config import ModelConfig
    from vlpet.models.build import build_model
    from vlpet.models.presets import resolve_preset
    from vlpet.flags.published import method_preset
    from vlpet.losses import sample_mean_loss
    from vlpet.pet.peft_bridge import for_run, pet_config, tuner_hooks
    from vlpet.train.optim import HFAdamW, param_groups

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ts.resolve_device(args.device)
    if args.one in PUBLISHED:
        pet = method_preset(args.one, resolve_preset(args.backbone).kind)
    else:
        pet = for_run(pet_config(REPO / "scripts" / "peft" / f"{args.one}.json"), 10000)
    model = build_model(ModelConfig(backbone=args.backbone), pet).to(device)
    batch = ts.make_batch(model, args.batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    hooks = tuner_hooks(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = HFAdamW(param_groups(model, 0.01), lr=1e-4, eps=1e-6)
    state = {"step": 0}

    def step():
        logits = model(batch["input_ids"], batch["vis_feats"], batch["boxes"], labels=batch["labels"],
                       task="vqa").logits  # MTL-LoRA reads the batch's task
        loss = sample_mean_loss(logits, batch["labels"])
        if hooks is not None:
            loss = hooks.loss(loss)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        if hooks is not None:
            hooks.after_step(state["step"])
        optimizer.zero_grad()
        state["step"] += 1

    times = ts.timed(step, args.steps, args.warmup, device)
    ns = argparse.Namespace(backbone=args.backbone, method=args.one, bf16=False, batch=args.batch, steps=args.steps,
                            warmup=args.warmup)
    return ts.report("step", ns, model, device, times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="bart-base")
    p.add_argument("--batch", type=int, default=300)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(methods()))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args)), flush=True)
        return 0
    chosen = [m for m in args.only.split(",") if m] or methods()
    rows = []
    for name in chosen:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--backbone", args.backbone,
               "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if done.returncode != 0:
            print(json.dumps({"method": name, "error": done.stderr.strip().splitlines()[-1:]}), flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if rows:
        print(f"\n{args.backbone}, batch {args.batch}, {rows[0]['device_name']}, {rows[0]['threads']} threads, "
              f"median of {args.steps} steps after {args.warmup}\n")
        print("| method | trainable | Params (%) | step (s) | peak RSS (MB) | CUDA peak (MB) |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['method']} | {r['trainable_params']} | {100 * r['trainable_params'] / r['total_params']:.2f} "
                  f"| {r['step_s_median']:.3f} | {r['peak_rss_mb']} | {r['cuda_peak_alloc_mb']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
