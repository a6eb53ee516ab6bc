"""``python -m vlpet params``: the Params (%) of a method on a full-size backbone, without allocating weights.

Prints the official line ``Trainable param percentage: X.XX% (trainable/total)`` and one JSON line. Counts follow
from the built structure (meta device), never from stored constants. On a backbone of another width d the
published VL-PET widths (r, r_g, r_d, all set for d = 768) are scaled by d / 768 (``scaled_to_width``).
"""

from __future__ import annotations

import argparse
import json

from ..config import ModelConfig, PETConfig
from ..models.build import build_model, build_on_meta
from ..models.presets import PRESETS, resolve_preset
from ..config import GATE_KINDS
from ..flags.published import BASELINES, LST_METHODS, PET_OVERRIDES, RECENT_METHODS, VLPET_METHODS, method_preset
from ..pet.trainable import count_parameters, percentage_line


METHOD_HELP = (
    "the configuration a name gives depends on the backbone. BART: the VL-Adapter / VL-PET scripts "
    "(full_finetuning, bitfit, single_*, hyperformer, vl-pet-*). T5: vl-pet-* are VL-PET's T5 scripts; "
    "full_finetuning, bitfit, prompt_tuning, lora, adapter and lst are the Ladder-Side-Tuning repository's "
    "VL-T5 scripts (bitfit adds the biases T5 lacks; lora r=150 on q,v; adapter d/4 with frozen LayerNorms; "
    "prompt_tuning 40 prompts through an 800-wide MLP; lst side network d/4 with ladders). lora, adapter, "
    "prompt_tuning and lst are T5 only. mtl_lora: MTL-LoRA's VL-BART script (r 64, alpha 16, 2 B, 4 tasks, "
    "temperature 0.8)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", default="bart-base",
                        help=f"a preset ({', '.join(PRESETS)}) or its hub id (facebook/bart-base, t5-base, "
                             "google/flan-t5-base, ...)")
    parser.add_argument("--method", default="vl-pet-large",
                        choices=VLPET_METHODS + BASELINES + LST_METHODS + RECENT_METHODS,
                        help=METHOD_HELP)
    parser.add_argument("--vlpet_gate", default="none", choices=GATE_KINDS,
                        help="Table 9: the VL-PET gate on single_adapter / single_compacter encoder adapters")
    parser.add_argument("--video", action="store_true", help="video-text inputs: 512-d CLIP-ViT features, 64 frames")
    for flag, field in PET_OVERRIDES.items():
        kind = float if field == "scale" else int
        parser.add_argument(f"--{flag}", type=kind, default=None, help=f"override the published {field}")
    parser.add_argument("--adapter_train_layer_norms", action="store_true",
                        help="adapter (T5): also train the LayerNorms, as --unfreeze_layer_norms intends (8.00 %%)")
    parser.add_argument("--peft_config", default=None, metavar="PATH",
                        help="count a huggingface/peft tuner instead of --method (adapter_config.json or its folder)")
    parser.add_argument("--unfreeze_bias", action="store_true", help="with --peft_config: also train every bias")
    parser.add_argument("--unfreeze_layer_norms", action="store_true",
                        help="with --peft_config: also train every LayerNorm")
    parser.add_argument("--feat_dim", type=int, default=None, help="visual feature size (2048 image, 512 video)")
    parser.add_argument("--n_boxes", type=int, default=None, help="visual tokens (36 image, 64 video)")


def configs(args: argparse.Namespace) -> tuple[ModelConfig, PETConfig]:
    preset = resolve_preset(args.backbone)
    if preset is None:
        raise ValueError(f"unknown backbone {args.backbone!r} for counting; choose one of {sorted(PRESETS)}")
    if args.peft_config:
        from ..pet.peft_bridge import pet_config

        pet = pet_config(args.peft_config, args.unfreeze_bias, args.unfreeze_layer_norms)
    elif args.unfreeze_bias or args.unfreeze_layer_norms:
        raise ValueError("--unfreeze_bias / --unfreeze_layer_norms add to a --peft_config; --method bitfit is "
                         "the published BitFit")
    else:
        pet = scaled_to_width(method_preset(args.method, preset.kind, args.vlpet_gate), preset.arch["d_model"])
    overrides = {field: getattr(args, flag) for flag, field in PET_OVERRIDES.items() if getattr(args, flag) is not None}
    if overrides and args.peft_config:
        raise ValueError(f"--{next(iter(overrides))} sizes a published method, not a --peft_config")
    pet = PETConfig(**{**vars(pet), **overrides, "adapter_train_layer_norms": args.adapter_train_layer_norms})
    feat_dim = args.feat_dim or (512 if args.video else 2048)
    n_boxes = args.n_boxes or (64 if args.video else 36)
    return ModelConfig(backbone=args.backbone, feat_dim=feat_dim, n_boxes=n_boxes), pet


def scaled_to_width(pet: PETConfig, d_model: int, published_d: int = 768) -> PETConfig:
    """r tied to d: the VL-PET widths r, r_g, r_d times d / 768, r rounded to a multiple of N_h (at least N_h).

    BART-large / mBART-large (d = 1024): r = r_g = r_d = 128; T5-large: r = r_g = 256, r_d = 128; N_h and s stay.
    Baselines keep their own rules (the adapters' d / reduction_factor already follows d)."""
    if pet.method != "vl-pet" or d_model == published_d:
        return pet
    scale = d_model / published_d
    heads = pet.num_heads
    return PETConfig(**{**vars(pet), "adapter_dim": max(heads, round(pet.adapter_dim * scale / heads) * heads),
                        "gate_dim": max(1, round(pet.gate_dim * scale)), "vpa_dim": max(1, round(pet.vpa_dim * scale))})


def run(args: argparse.Namespace) -> int:
    model_cfg, pet_cfg = configs(args)
    try:
        model = build_on_meta(model_cfg, pet_cfg)
    except (RuntimeError, NotImplementedError):  # a peft tuner that reads values while injecting (e.g. BOFT)
        if pet_cfg.method != "peft":
            raise
        model = build_model(model_cfg, pet_cfg)  # the same structure, allocated
    trainable, total = count_parameters(model)
    print(percentage_line(trainable, total))
    record = {"trainable": trainable, "total": total, "percent": round(100 * trainable / total, 4)}
    if pet_cfg.method == "peft":
        from ..pet.peft_bridge import parts_line, trainable_parts

        record["parts"] = trainable_parts(model)
        print(parts_line(record["parts"]))
    print(json.dumps(record))
    return 0
