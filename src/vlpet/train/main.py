"""``python -m vlpet train``: the multi-task trainer (pipeline spec §4) with the published flag names.

train → validate every epoch → test the last epoch → ``snap/<VLBart|VLT5>_multitask/<run name>/`` with ``log.txt``,
``metrics.jsonl``, ``config.json``, TensorBoard events (when tensorboard is installed) and checkpoints holding only
what was trained. ``--resume`` continues from the latest epoch checkpoint; torchrun gives DDP (gloo on CPU).

``--tasks tvqa,how2qa,tvc,yc2c`` runs the video-text trainer (``train.video``; ``snap/<…>_multitask_video/``): the
same loop, video validation metrics, a ``BEST`` checkpoint on the 4-task validation average, and VALUE submission
files for the unlabelled test splits instead of test scores.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from ..config import to_dict
from ..data.layout import DataError
from ..data.tokenizer import load_tokenizer
from ..flags.published import model_config_from_args, pet_config_from_args
from ..models.build import build_model
from ..models.presets import PRESETS
from ..pet.lst import init_side_network
from ..pet.official import CheckpointError
from ..pet.peft_bridge import for_run
from ..pet.trainable import count_parameters, percentage_line
from .checkpoint import NonFiniteStateError, describe_checkpoint, latest_checkpoint
from .data import build_data, load_source, seed_everything, task_list
from . import preflight, speed
from .distributed import barrier, init_distributed, shutdown
from .interrupts import Interrupted, defer_signals, stop_signals
from .lock import RunLock, RunLockedError
from .loop import NonFiniteLossError
from .resume import check_resume_flags, load_initial_weights
from .runlog import RunLog, run_dir_for
from .session import Run
from .summary import RunSummary, records_status
from .video import is_video


def run(args) -> int:
    """Entry point: one clear message and a non-zero exit for user errors; nothing overwritten. Stop signals
    (Ctrl-C, SIGTERM, SIGUSR1) save the position reached and exit 128 + the signal number."""
    runs: list[Run] = []
    try:
        with stop_signals(), speed.deterministic_mode(getattr(args, "deterministic", False)):  # a second stop signal is absorbed (interrupts._raise)
            try:
                return train(args, runs)
            except KeyboardInterrupt as stop:
                if runs:
                    with defer_signals():
                        runs[0].saver.save_interrupted()
                return _stopped(stop if isinstance(stop, Interrupted) else Interrupted(), runs)
    except KeyboardInterrupt as stop:
        return _stopped(stop if isinstance(stop, Interrupted) else Interrupted(), runs)
    except (DataError, CheckpointError, RunLockedError, ValueError) as err:
        if isinstance(err, NonFiniteStateError):
            return _non_finite(err, runs)
        trained = runs and runs[0].saver.phase == "validate"  # e.g. a scorer failing after the epoch was saved
        kept = f"; the trained epoch is saved: {_kept(runs)}; fix this and run the same command plus --resume" \
            if trained else ""
        _say(f"error: {err}{kept}")
        return 2
    except NonFiniteLossError as err:
        return _non_finite(err, runs)
    except OSError as err:
        where = err.filename or "a file"
        _say(f"error: cannot write or read {where}: {err.strerror or err}; {_kept(runs)}")
        return 74


def _rank() -> int:
    """This process's DDP rank (torchrun's RANK; 0 alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _say(text: str) -> None:
    """One line on stderr; under DDP the other ranks' lines name their rank (rank 0 speaks for the run)."""
    print(f"rank {_rank()}: {text}" if _rank() else text, file=sys.stderr)


def _kept(runs: list) -> str:
    """What the run folder holds to continue from, in words."""
    if not runs or not runs[0].d.main:
        return "nothing was saved (the run had not started)"
    return f"{describe_checkpoint(runs[0].run_dir)} is what remains to resume from"


def _stopped(stop: Interrupted, runs: list) -> int:
    name = stop.args[0] if stop.args else "SIGINT"
    if _rank():  # rank 0 says what was saved; the launcher's exit code is rank 0's
        return stop.exit_code
    if not runs:
        print(f"interrupted ({name}) before training started: nothing was saved", file=sys.stderr)
    elif runs[0].saver.phase == "test":
        print(f"interrupted ({name}) during the test: training is complete ({_kept(runs)}); run the same command "
              "plus --resume to test it again", file=sys.stderr)
    else:
        print(f"interrupted ({name}): {_kept(runs)}; continue with the same command plus --resume",
              file=sys.stderr)
    return stop.exit_code


def _non_finite(err: Exception, runs: list) -> int:
    _say(f"error: training stopped: {err}" + ("" if _rank() else f"; nothing non-finite was saved: {_kept(runs)}"))
    return 3


def hub_id_of(backbone: str) -> str | None:
    """The hub id ``from_pretrained`` fetches for ``--backbone`` (a preset name maps to its hub id; None for a
    preset without pretrained weights, which ``build_model`` refuses in its own words)."""
    preset = PRESETS.get(backbone)
    return backbone if preset is None else preset.hf_id


@records_status
def train(args, runs: list | None = None) -> int:
    """The whole run; the ``Run`` object is appended to ``runs`` (for the messages of ``run``)."""
    preflight.check_device(args.device, args.bf16)  # before anything touches CUDA
    d = init_distributed(args.device, getattr(args, "ddp_timeout", 30.0))
    model_cfg = model_config_from_args(args, args.explicit)
    pet_cfg = pet_config_from_args(args)
    if not model_cfg.pretrained and pet_cfg.method != "full_finetuning" and d.main:
        print(f"warning: --from_scratch with {pet_cfg.method}: the backbone is random and stays frozen, so the PET "
              "modules steer noise and the scores stay near zero; pass pretrained weights (--backbone DIR, e.g. the "
              "demo's <run>/backbone) or train the whole model (--method full_finetuning)", file=sys.stderr)
    names = task_list(args)
    video = is_video(names)
    if d.main:  # the scorers validation and test will need, in seconds rather than after an epoch
        preflight.check_scorers(names, args.epochs)
    tokenizer = load_source("tokenizer", args.tokenizer or args.backbone, load_tokenizer)
    model_cfg = type(model_cfg)(**{**vars(model_cfg), "vocab_size": len(tokenizer)})
    loaders = build_data(args, tokenizer, d.rank, d.world_size, names, video, model_cfg.n_boxes, model_cfg.feat_dim)
    pet_cfg = for_run(pet_cfg, args.epochs * loaders["train"].steps_per_epoch)  # AdaLoRA: total_step of the run
    seed_everything(args.seed)
    model = load_source("backbone", model_cfg.backbone, lambda _: build_model(model_cfg, pet_cfg),
                        hub_id=hub_id_of(model_cfg.backbone) if model_cfg.pretrained else None).to(d.device)
    loaded = load_initial_weights(model, args.load) if args.load and not args.resume else None
    run_dir = run_dir_for(args, model.kind, video)
    with RunLock(run_dir) if d.main else contextlib.nullcontext():
        if d.main and not args.resume and latest_checkpoint(run_dir) is not None:
            raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
        if args.resume:
            check_resume_flags(args, run_dir, d.world_size)  # before config.json is rewritten
        config = {"model": to_dict(model_cfg), "pet": to_dict(pet_cfg),
                  "args": {k: v for k, v in vars(args).items() if k != "explicit"}, "world_size": d.world_size}
        log = RunLog(run_dir, d.main, args.wandb, config)
        if d.main:
            (run_dir / "config.json").write_text(json.dumps(config, indent=1, default=str))
        counts = count_parameters(model)
        log.line(percentage_line(*counts))
        if loaded:
            log.line(f"loaded weights from {loaded}")
        if not loaded and (side := init_side_network(model, loaders["train"], run_dir, save=d.main,
                                                          wait=(lambda: barrier(d)) if d.enabled else None)):
            log.line(side)  # LST: the side network starts as the Fisher-pruned backbone (Fisher saved in run_dir)
        session = Run(args, d, model, tokenizer, loaders, run_dir, config, log, names)
        if runs is not None:
            runs.append(session)
        summary = RunSummary.begin(run_dir, "train", config, counts, args.seed, enabled=d.main)
        session.fit()
        summary.close("finished")
    shutdown(d)
    return 0
