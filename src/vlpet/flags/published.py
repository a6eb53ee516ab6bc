"""The published flag names → the typed configs. The only place that knows the official flag names.

Every flag of the official ``src/param.py`` parses (``official_flags.py``), so published command lines keep
working; ``--feature`` (which argparse abbreviation used to turn into ``--feature_type``) is an explicit alias, and
``--local_rank`` / ``--local-rank`` are both accepted (the rank itself comes from ``LOCAL_RANK``). Abbreviations
are otherwise off: an unknown or misspelt flag is an error. A flag that selects official behaviour this
implementation does not provide is rejected by name instead of being silently ignored.
"""

from __future__ import annotations

import argparse
import re

from ..config import PUBLISHED_VLPET, ModelConfig, PETConfig
from .official import LST_FLAGS, OFFICIAL_FLAGS

# Official gate flag → our gate kind, and the T5 zero-init flag that belongs to each kind (model spec §5).
GATE_FLAGS = {
    "use_encoder_adapter_gating_small_xy_cat": ("small", "use_encoder_gating_small_up_zero_init"),
    "use_encoder_adapter_gating_middle_xy_add": ("middlex", "use_encoder_gating_middle_up_zero_init"),
    "use_encoder_adapter_gating_middle_ia3_add": ("middley", "use_encoder_gating_middle_ia3_zero_init"),
    "use_encoder_adapter_gating_large_x_lowrank": ("large", "use_encoder_gating_large_x_lowrank_up_zero_init"),
}
FEATURE_DIMS = {"butd": 2048, "RN50": 2048, "RN101": 2048, "RN50x4": 2560, "ViT": 512}
# Method switches of the official code that this implementation does not (yet) provide.
UNSUPPORTED = (
    "use_lradapter", "efficient_unique_hyper_net", "use_attn_prefix", "shared_phm_rule_over_tasks", "factorized_phm_rule",
    "use_encoder_adapter_gating_large_x", "use_encoder_gating_large_x_lowrank", "use_encoder_adapter_gating_add",
    "use_encoder_adapter_gating_layernorm", "use_encoder_adapter_gating_l2norm", "use_encoder_adapter_up_multihead",
    "use_encoder_adapter_down_up_multihead", "use_encoder_adapter_down_up_pair_multihead", "no_vis",
    "use_vis_adapter", "vis_use_transformer", "expand_vis_embedding", "oneddownsample", "share_vis_lang_layer_norm",
    "use_encoder_adapter_scaling", "use_encoder_x2_scaling", "use_decoder_enc_attn_value_parallel_adapter_scaling",
    "use_store_gate_large", "classifier", "fp16",
)
NON_DEFAULT_UNSUPPORTED = {"gradient_accumulation_steps": 1, "optim": "adamw", "multitask_sampling": "roundrobin",
                           "testing": False, "encoder_side_layers": None, "decoder_side_layers": None}
VLPET_METHODS = ("vl-pet-small", "vl-pet-middlex", "vl-pet-middley", "vl-pet-large")
BASELINES = ("full_finetuning", "bitfit", "single_adapter", "single_compacter", "single_lora", "single_prompt",
             "hyperformer", "ssf")
# The Ladder-Side-Tuning repository's VL-T5 script names (T5 only; full_finetuning and bitfit are shared names
# whose T5 preset is that repository's configuration, spec t5-baselines-lst.md §3).
LST_METHODS = ("lora", "adapter", "prompt_tuning", "lst")
# Methods published after VL-PET on the same benchmark, written natively (peft lacks them): their script's sizes.
RECENT_METHODS = ("mtl_lora",)
RECENT_PRESETS = {"mtl_lora": dict(lora_dim=64, lora_alpha=16.0, mtl_b_num=2, mtl_lambda_num=4, mtl_temperature=0.8)}
# On a T5 backbone the VL-Adapter-style flags select the LST repository's methods (same flags, T5 semantics).
T5_NAMES = {"single_lora": "lora", "single_adapter": "adapter", "single_prompt": "prompt_tuning"}
LST_PRESETS = {"lora": dict(lora_dim=150), "adapter": dict(reduction_factor=4),
               "prompt_tuning": dict(prompt_len=40, prompt_mid_dim=800), "lst": dict(side_reduction_factor=4)}


def _str2bool(v: str) -> bool:
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got {v!r}")


_TYPES = {"bool": _str2bool, "int": int, "float": float, "str": str}
_ALIASES = {"--feature_type": ["--feature"], "--local_rank": ["--local-rank"]}


# The published flags a user of ``python -m vlpet train`` sets most; ``--help`` lists these, ``--help_all`` all.
COMMON_FLAGS = ("--backbone", "--tokenizer", "--from_scratch", "--output", "--load", "--seed", "--tasks", "--epochs",
                "--batch_size", "--valid_batch_size", "--lr", "--warmup_ratio", "--weight_decay", "--clip_grad_norm",
                "--dropout", "--num_workers", "--feature_type", "--feat_dim", "--n_boxes", "--downsample",
                "--num_beams", "--gen_max_length", "--train_topk", "--valid_topk", "--use_tasks_prompts")
_UPSTREAM_REF = re.compile(r"\s*\((?:see )?(?:[\w/]+\.py:[\d-]+|§[\d.]+)\)|,? see §[\d.]+|\s*§[\d.]+")


def help_text(meaning: str, kind: str, default) -> str:
    """A flag's help: its meaning without references to files or spec sections outside this repository, an
    ``UNUSED`` flag said plainly, and the default of a valued flag."""
    text = _UPSTREAM_REF.sub("", meaning).strip()
    if text.startswith("UNUSED"):
        text = "accepted for the published command lines; no effect" + text[len("UNUSED"):]
    if kind != "flag" and default not in (None, ""):
        text += f" (default: {default})"
    return text.replace("%", "%%")


def add_official_flags(parser: argparse.ArgumentParser, brief: bool = False) -> None:
    """Add every official flag (same names, types and defaults) to ``parser``; ``brief``: only the COMMON_FLAGS
    are shown in ``--help`` (the others parse all the same)."""
    for title, flags in (("published flags (the official param.py; the common ones)" if brief else
                          "official VL-PET flags (src/param.py)", OFFICIAL_FLAGS),
                         ("Ladder-Side-Tuning flags (VL-T5/src/param.py)", LST_FLAGS)):
        group = parser.add_argument_group(title)
        for flag, kind, default, meaning in flags:
            names = [flag, *_ALIASES.get(flag, [])]
            shown = not brief or flag in COMMON_FLAGS
            help_ = help_text(meaning, kind, default) if shown else argparse.SUPPRESS
            if kind == "flag":
                group.add_argument(*names, action="store_true", help=help_)
            else:
                group.add_argument(*names, type=_TYPES[kind], default=default, help=help_)


def build_parser(prog: str, description: str, parser_class=argparse.ArgumentParser,
                 brief: bool = False) -> argparse.ArgumentParser:
    parser = parser_class(prog=prog, description=description, allow_abbrev=False)
    add_official_flags(parser, brief)
    parser.add_argument("--peft_config", default=None, metavar="PATH",
                        help="any huggingface/peft tuner on the language model: an adapter_config.json or its folder "
                             "(replaces the method flags; --unfreeze_bias / --unfreeze_layer_norms add to it as in "
                             "DoRA's scripts; docs/peft.md)")
    mtl = parser.add_argument_group("MTL-LoRA flags (pUmpKin-Co/MTL-LoRA VL-T5/src/param.py)")
    mtl.add_argument("--use_mlora", action="store_true", help="MTL-LoRA on q_proj/v_proj (with --lora_dim, "
                                                             "--lora_alpha)")
    mtl.add_argument("--B_num", type=int, default=4, help="MTL-LoRA: shared up-projections (their script: 2)")
    mtl.add_argument("--lambda_num", type=int, default=4, help="MTL-LoRA: task-specific transforms (one per task)")
    mtl.add_argument("--mlora_temperature", type=float, default=1.0, help="MTL-LoRA: softmax temperature (0.8)")
    return parser


def explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations the user actually set on the command line (to override presets)."""
    probe = argparse.ArgumentParser(allow_abbrev=False, argument_default=argparse.SUPPRESS, add_help=False)
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            kwargs = dict(dest=action.dest, default=argparse.SUPPRESS)
            if isinstance(action, argparse._StoreTrueAction):
                probe.add_argument(*action.option_strings, action="store_true", **kwargs)
            else:
                probe.add_argument(*action.option_strings, nargs=action.nargs, **kwargs)
    namespace, _ = probe.parse_known_args(argv)
    return set(vars(namespace))


def check_supported(args: argparse.Namespace) -> None:
    chosen = [f"--{name}" for name in UNSUPPORTED if getattr(args, name, False)]
    # Values no published script uses, whose official behaviour is not reproduced here.
    for flag, published in NON_DEFAULT_UNSUPPORTED.items():
        value = getattr(args, flag, published)
        if value != published:
            chosen.append(f"--{flag} {value}")
    if chosen:
        raise ValueError(f"{', '.join(chosen)}: this option of the official code is not implemented here "
                         "(see the README's list of what is and is not reproduced)")


def model_config_from_args(args: argparse.Namespace, explicit: set[str] | None = None) -> ModelConfig:
    explicit = explicit if explicit is not None else set()
    feat_dim = int(args.feat_dim) if "feat_dim" in explicit else FEATURE_DIMS.get(args.feature_type, 2048)
    return ModelConfig(backbone=args.backbone, pretrained=not args.from_scratch, feat_dim=feat_dim,
                       n_boxes=args.n_boxes, downsample=args.downsample, pos_dim=int(args.pos_dim),
                       dropout=args.dropout)


def pet_config_from_args(args: argparse.Namespace) -> PETConfig:
    """The PET method an official command line selects (model spec §1.2, §1.4)."""
    check_supported(args)
    if getattr(args, "peft_config", None):
        return peft_pet_config(args)
    gates = [(kind, zero_flag) for flag, (kind, zero_flag) in GATE_FLAGS.items() if getattr(args, flag)]
    if len(gates) > 1:
        raise ValueError("choose at most one --use_encoder_adapter_gating_* flag")
    gate, zero_flag = gates[0] if gates else ("none", None)
    common = dict(
        gate=gate, adapter_dim=args.adapter_down_dim, num_heads=args.encoder_adapter_multihead_num_head,
        gate_dim=args.adapter_gating_down_dim,
        scale=args.encoder_gating_scaling_factor if args.use_encoder_gating_scaling else 1.0,
        vpa_dim=args.decoder_enc_attn_value_parallel_adapter_down_dim,
        zero_init_adapter_up=args.use_encoder_multihead_up_zero_init,
        zero_init_gate=bool(zero_flag and getattr(args, zero_flag)),
        zero_init_vpa_up=args.use_decoder_enc_vpa_up_zero_init,
        train_visual_embedding=not args.freeze_vis_emb, reduction_factor=args.reduction_factor,
        hypercomplex_division=args.hypercomplex_division, phm_init_range=args.phm_init_range,
        lora_dim=args.lora_dim, lora_alpha=args.lora_alpha, prompt_len=max(args.encoder_prompt_len, 1),
        prompt_mid_dim=args.mid_dim, tasks=tuple(t for t in args.tasks.split(",") if t) or PETConfig.tasks,
        projected_task_embedding_dim=args.projected_task_embedding_dim if args.projected_task_embedding_dim > 0
        else 8,
        side_reduction_factor=args.side_reduction_factor, samples_for_fisher=args.samples_for_fisher,
        side_init=_side_init(args.load_side_pretrained_weights),
        mtl_b_num=getattr(args, "B_num", 4), mtl_lambda_num=getattr(args, "lambda_num", 4),
        mtl_temperature=getattr(args, "mlora_temperature", 1.0),
    )
    return PETConfig(method=_method(args), **common)


def peft_pet_config(args: argparse.Namespace) -> PETConfig:
    """``--peft_config PATH``: the tuner peft applies; DoRA's --unfreeze_bias / --unfreeze_layer_norms add to it."""
    from ..pet.peft_bridge import pet_config

    others = [name for name in _chosen(args) if name != "bitfit"] + (["single_adapter"] if args.use_adapter else [])
    if others or args.use_bitfit:
        raise ValueError("--peft_config replaces the method flags; drop the flags of "
                         f"{', '.join(others or ['bitfit'])}")
    return pet_config(args.peft_config, args.unfreeze_bias, args.unfreeze_layer_norms, not args.freeze_vis_emb)


def _chosen(args: argparse.Namespace) -> list[str]:
    return [name for name, on in (
        ("full_finetuning", args.unfreeze_language_model), ("bitfit", args.unfreeze_bias or args.use_bitfit),
        ("single_lora", args.use_lora), ("single_prompt", args.encoder_prompt_len > 0),
        ("single_compacter", args.use_compacter), ("vl-pet", args.use_encoder_adapter_down_multihead),
        ("hyperformer", args.use_hyperformer), ("lst", args.use_side_transformers),
        ("mtl_lora", getattr(args, "use_mlora", False)),
        ("ssf", getattr(args, "use_ssf", False)),
    ) if on]


def _method(args: argparse.Namespace) -> str:
    if args.use_compacter and (args.shared_phm_rule or args.factorized_phm):
        raise ValueError("Compacter is implemented as published: --shared_phm_rule False --factorized_phm False")
    chosen = _chosen(args)
    if not chosen and args.use_adapter:
        chosen = ["single_adapter"]
    if not chosen:
        raise ValueError("the flags select no PET method; pass --method NAME, one of "
                         f"{', '.join(VLPET_METHODS + BASELINES + LST_METHODS)} (the published flags of that "
                         "method), or the flags of exactly one published script (scripts/)")
    if len(chosen) != 1:
        raise ValueError(f"the flags select {len(chosen)} PET methods ({', '.join(chosen)}); "
                         "pass the flags of exactly one published script (or one --method)")
    gated = any(getattr(args, flag) for flag in GATE_FLAGS)
    return T5_NAMES.get(chosen[0], chosen[0]) if backbone_kind(args.backbone) == "t5" and not gated else chosen[0]


def backbone_kind(backbone: str) -> str:
    """"t5" for a T5 backbone name (t5-base, google-t5/t5-base, tiny-t5, a local folder named so), else "bart"."""
    return "t5" if "t5" in backbone.rsplit("/", 1)[-1].lower() else "bart"


def _side_init(value: str) -> str:
    if value not in ("", "fisher-v2"):
        raise ValueError(f"--load_side_pretrained_weights {value}: only fisher-v2 (the published LST script) or "
                         "nothing (random side init) is implemented")
    return value or "none"


def method_preset(method: str, kind: str, gate: str = "none") -> PETConfig:
    """A named method with the published hyper-parameters for the backbone kind ("bart" or "t5").

    ``gate`` applies the VL-PET gate to a baseline's encoder adapters (Table 9: single_adapter, single_compacter).
    """
    if method in VLPET_METHODS:
        return PETConfig(method="vl-pet", gate=method.rsplit("-", 1)[1], **PUBLISHED_VLPET[kind])
    if method in RECENT_METHODS:
        return PETConfig(method=method, gate="none", **RECENT_PRESETS[method])
    if method in LST_METHODS:
        if kind != "t5":
            raise ValueError(f"{method} is the Ladder-Side-Tuning repository's T5 configuration; on BART use "
                             "single_lora, single_adapter or single_prompt")
        if gate != "none":
            raise ValueError("--vlpet_gate applies to single_adapter and single_compacter (Table 9)")
        return PETConfig(method=method, gate="none", **LST_PRESETS[method])
    if method not in BASELINES:
        raise ValueError(f"unknown method {method!r}; choose one of "
                         f"{VLPET_METHODS + BASELINES + LST_METHODS + RECENT_METHODS}")
    if gate != "none" and method not in ("single_adapter", "single_compacter"):
        raise ValueError("--vlpet_gate applies to single_adapter and single_compacter (Table 9)")
    return PETConfig(method=method, gate=gate, gate_dim=PUBLISHED_VLPET[kind]["gate_dim"])


# Official flag → PETConfig field, for overriding a method preset with the published flag names.
PET_OVERRIDES = {
    "adapter_down_dim": "adapter_dim", "encoder_adapter_multihead_num_head": "num_heads",
    "adapter_gating_down_dim": "gate_dim", "encoder_gating_scaling_factor": "scale",
    "decoder_enc_attn_value_parallel_adapter_down_dim": "vpa_dim",
}
