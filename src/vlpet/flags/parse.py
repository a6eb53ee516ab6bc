"""The trainer's command line: the parser (official flags + ours), friendly flag errors and the validation of every
value, all before torch is imported, so ``--help`` and a mistyped flag answer at once.

* A flag error is one line, a "did you mean --x?" for a near-miss, and a pointer to ``--help`` (not the 240-line
  usage).
* A negative number after a flag is its value (``--lr -1e-3`` parses; argparse alone took ``-1e-3`` for a flag), so
  that the validation can say what is wrong with it.
* ``validate`` checks batch sizes, epochs, step counts, learning rates, worker counts and the other numbers before
  anything heavy is built or any folder is created.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re

from .published import BASELINES, LST_METHODS, VLPET_METHODS, backbone_kind, build_parser

METHOD_NAMES = VLPET_METHODS + BASELINES + LST_METHODS
VIDEO_TASKS = ("tvqa", "how2qa", "tvc", "yc2c")

_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class FlagParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line plus a hint, not the whole usage."""

    def error(self, message: str):
        hint = self._did_you_mean(message)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n(see {self.prog} --help for every flag)\n")

    def _did_you_mean(self, message: str) -> str:
        if "unrecognized arguments" not in message:
            return ""
        known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        hints = []
        for token in re.findall(r"(--?[\w-]+)", message.split(":", 1)[1]):
            close = difflib.get_close_matches(token.split("=")[0], known, n=1, cutoff=0.75)
            if close:
                hints.append(f"{token} → did you mean {close[0]}?")
        return f" ({'; '.join(hints)})" if hints else ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Our own flags, next to the official ones (which ``build_parser`` adds)."""
    ours = parser.add_argument_group("vlpet trainer")
    ours.add_argument("--method", default=None, choices=METHOD_NAMES, metavar="NAME",
                      help="a published method by name, expanded to its launcher's flags (scripts/; the backbone "
                           "kind and --tasks pick the image-text BART or T5, or video-text script); flags given "
                           "as well override them. NAME: " + ", ".join(METHOD_NAMES))
    ours.add_argument("--datasets_root", default=None, help="data root (default: ./datasets, then ../datasets)")
    ours.add_argument("--resume", action="store_true", help="continue the run in --output from its latest checkpoint")
    ours.add_argument("--save_every_steps", type=int, default=0,
                      help="also checkpoint every N optimizer steps inside an epoch (0: at epoch ends only)")
    ours.add_argument("--bf16", action="store_true",
                      help="bf16 autocast, the frozen Linear weights cast once (fp32 is the faithful default)")
    # the speed options (train/speed.py; README "Speed options")
    ours.add_argument("--tf32", action="store_true", help="CUDA: TF32 matmuls/convolutions (not bit-exact)")
    ours.add_argument("--compile", action="store_true",
                      help="torch.compile the model's forward (eager fallback with a message if it fails)")
    ours.add_argument("--compile_backend", default="inductor", help=argparse.SUPPRESS)
    ours.add_argument("--onednn", action="store_true",
                      help="CPU fp32: the model's Linear layers through oneDNN (faster than MKL on many CPUs; "
                           "outputs equal to fp32 rounding, not bit for bit)")
    ours.add_argument("--deterministic", action="store_true",
                      help="deterministic kernels: torch.use_deterministic_algorithms, the cuBLAS workspace "
                           "setting, cuDNN deterministic, math SDPA on CUDA (slower; docs/gpu.md)")
    ours.add_argument("--nan_check_every", type=int, default=1,
                      help="check the loss for NaN/inf every N steps (1: every step, the default)")
    # memory options (docs/memory.md): the same update with less GPU memory
    ours.add_argument("--micro_batch_size", type=int, default=0,
                      help="run each published batch in chunks of at most M examples, accumulate and step once "
                           "(the same update; 0: whole batches)")
    ours.add_argument("--gradient_checkpointing", action="store_true",
                      help="recompute every transformer layer in the backward instead of keeping its activations")
    ours.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    ours.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ours.add_argument("--ddp_timeout", type=float, default=30.0, metavar="MINUTES",
                      help="DDP: minutes a process waits for the others in a collective before the run fails "
                           "(default 30; NCCL's own default is 10)")
    ours.add_argument("--no_progress", action="store_true", help="hide the tqdm progress bars")
    ours.add_argument("--use_ssf", action="store_true",
                      help="train SSF: scale and shift after every Linear (not in the paper; docs/extending.md)")
    ours.add_argument("--fix_gqa_prompt", action="store_true", help='use "gqa: " instead of the official "gpa: "')


def make_parser(description: str = "", full: bool = False) -> argparse.ArgumentParser:
    """The trainer's parser; its --help shows our flags and the common published ones (``full``: every flag)."""
    parser = build_parser("python -m vlpet train", description or _doc(), parser_class=FlagParser, brief=not full)
    add_arguments(parser)
    parser.add_argument("--help_all", action="help", help="show every flag: all the official param.py flags too")
    groups = parser._action_groups  # ours first, after the generic options: the flags a user of this trainer sets
    ours = [g for g in groups if g.title == "vlpet trainer"]
    parser._action_groups = groups[:2] + ours + [g for g in groups[2:] if g not in ours]
    if not full:
        parser.epilog = ("Every other flag of the official param.py (the PET method switches of the published "
                         "scripts and more) parses too: --help_all lists them; --method NAME sets a published "
                         "method's flags for you.")
    return parser


def _doc() -> str:
    return ("The multi-task trainer with the published flag names, e.g. python -m vlpet train --method "
            "vl-pet-large --datasets_root datasets. Exit codes: 0 done, 2 bad input, 3 NaN/inf stop, 130 Ctrl-C, "
            "143 SIGTERM, 138 SIGUSR1 (the last three after saving the position of the last completed step; "
            "continue with the same command plus --resume).")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--flag -1e-3`` → ``--flag=-1e-3``: a negative number after a flag is that flag's value."""
    out: list[str] = []
    for token in argv:
        if out and _NUMBER.match(token) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse and validate a trainer command line (exits 2 with one line on a flag error)."""
    from .published import explicit_dests, pet_config_from_args

    parser = make_parser(full="--help_all" in argv)
    argv = join_negative_values(argv)
    args = parser.parse_args(argv)
    args.method_flags = None
    if args.method:
        try:
            flags = method_flags(args.method, parser, argv)
        except ValueError as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        argv = [*flags, *argv]  # the user's flags after the published ones: theirs win
        args = parser.parse_args(argv)
        args.method_flags = " ".join(flags)  # recorded in config.json beside "method"
    args.explicit = explicit_dests(parser, argv)
    absolute_paths(args)
    try:
        validate(args)
        pet_config_from_args(args)  # the method the flags select (or why none / two), before torch is imported
    except ValueError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    return args


PATH_FLAGS = ("backbone", "tokenizer", "datasets_root", "load")


def absolute_paths(args: argparse.Namespace) -> None:
    """Local folders and files given as relative paths become absolute (os.path.abspath: the name stays), so that
    config.json and the checkpoints work from any folder (``predict`` run elsewhere finds the backbone); hub ids
    and presets (no such path here) stay as given."""
    import os

    for name in PATH_FLAGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value and os.path.exists(os.path.expanduser(value)):
            setattr(args, name, os.path.abspath(os.path.expanduser(value)))


def method_flags(method: str, parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The published flags of ``method`` for the user's backbone kind (default: BART, T5 for the T5-only names)
    and domain (video when the user's --tasks are video tasks)."""
    from .methods import PUBLISHED_FLAGS
    from .published import explicit_dests

    given = parser.parse_args(argv)
    explicit = explicit_dests(parser, argv)
    kind = backbone_kind(given.backbone) if "backbone" in explicit else ("t5" if method in LST_METHODS else "bart")
    tasks = {t for t in given.tasks.split(",") if t} if "tasks" in explicit else set()
    domain = "video" if tasks and tasks <= set(VIDEO_TASKS) else "image"
    entry = PUBLISHED_FLAGS.get((domain, kind, method))
    if entry is None:
        have = sorted(m for d, k, m in PUBLISHED_FLAGS if (d, k) == (domain, kind))
        raise ValueError(f"--method {method}: no published {domain}-text script on a {kind.upper()} backbone; "
                         f"there: {', '.join(have)}")
    return entry[1].split()


# flag → (check, what a valid value is)
_RULES = {
    "batch_size": (lambda v: v > 0, "a positive integer"),
    "epochs": (lambda v: v >= 0, "0 or more"),
    "save_every_steps": (lambda v: v >= 0, "0 (epoch ends only) or a positive number of steps"),
    "num_workers": (lambda v: v >= 0, "0 or more"),
    "lr": (lambda v: v > 0, "a positive number"),
    "adam_eps": (lambda v: v > 0, "a positive number"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "n_boxes": (lambda v: v > 0, "a positive integer"),
    "feat_dim": (lambda v: v > 0, "a positive integer"),
    "num_beams": (lambda v: v >= 1, "1 or more"),
    "gen_max_length": (lambda v: v > 1, "2 or more"),
    "train_topk": (lambda v: v == -1 or v > 0, "-1 (all) or a positive number"),
    "valid_topk": (lambda v: v == -1 or v > 0, "-1 (all) or a positive number"),
    "valid_batch_size": (lambda v: v is None or v > 0, "a positive integer"),
    "seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "nan_check_every": (lambda v: v >= 1, "1 or more"),
    "ddp_timeout": (lambda v: v > 0, "a positive number of minutes"),
    "micro_batch_size": (lambda v: v >= 0, "0 (whole batches) or a positive number of examples"),
}


def validate(args: argparse.Namespace) -> None:
    """Every numeric value in range, and the combinations that cannot work; a ValueError naming the flag."""
    for name, (ok, what) in _RULES.items():
        value = getattr(args, name, None)
        if value is None and name != "valid_batch_size":
            continue
        finite = value is None or not isinstance(value, float) or math.isfinite(value)
        if not finite or not ok(value):
            raise ValueError(f"--{name} {value}: must be {what}")
    for name, value in sorted(vars(args).items()):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{name} {value}: must be a finite number")
    if args.epochs == 0 and not args.load:
        raise ValueError("--epochs 0 only tests weights given with --load (otherwise it would test random "
                         "weights); train for at least one epoch")
    check_save_every(args.save_every_steps, args.nan_check_every)
    check_peft_path(getattr(args, "peft_config", None))
    if getattr(args, "deterministic", False) and getattr(args, "compile", False):
        raise ValueError("--deterministic covers the eager kernels; leave out --compile (inductor's generated "
                         "kernels are not covered)")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", args.device):
        raise ValueError(f"--device {args.device}: choose auto, cpu, cuda or cuda:N")


def check_peft_path(path: str | None) -> None:
    """``--peft_config``: a file, or a folder holding ``adapter_config.json`` (its content is checked by peft later)."""
    from pathlib import Path

    if path is not None and not (Path(path).is_file() or (Path(path) / "adapter_config.json").is_file()):
        raise ValueError(f"--peft_config {path}: no such file (an adapter_config.json as PeftConfig.save_pretrained "
                         "writes it, or its folder)")


def check_save_every(save_every_steps: int, nan_check_every: int) -> None:
    """Step checkpoints only where the loss was checked: ``--save_every_steps`` a multiple of ``--nan_check_every``."""
    if save_every_steps and nan_check_every > 0 and save_every_steps % nan_check_every:
        raise ValueError(f"--save_every_steps {save_every_steps} must be a multiple of --nan_check_every "
                         f"{nan_check_every}, so that no checkpoint holds an unchecked update")
