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
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..config import to_dict
from ..data.device import to_device
from ..data.layout import DataError, DataLayout
from ..data.multitask import MultitaskLoader, build_datasets, build_loaders, task_prompts
from ..data.tokenizer import load_tokenizer
from ..data.video import VideoLayout, build_video_datasets, build_video_loaders, video_task_prompts
from ..models.build import build_model
from ..param import model_config_from_args, pet_config_from_args
from ..pet.lst import init_side_network
from ..pet.official import CheckpointError
from ..pet.trainable import count_parameters, percentage_line
from .checkpoint import (NonFiniteStateError, capture_rng, describe_checkpoint, latest_checkpoint, load_checkpoint,
                         mark_latest, previous_checkpoint, save_checkpoint)
from .cli import add_arguments, make_parser, parse  # noqa: F401  (re-exported: the trainer's parser)
from .distributed import Dist, barrier, init_distributed, shutdown
from .interrupts import Interrupted, defer_signals, stop_signals
from .lock import RunLock, RunLockedError
from .loop import BestTracker, NonFiniteLossError, evaluate, tasks_for, train_epoch
from .summary import RunSummary, records_status
from .video import BEST, BEST_SUFFIX, VIDEO_TASKS, is_video
from .optim import HFAdamW, linear_warmup_schedule, param_groups
from . import speed

IMAGE_TASKS = ("vqa", "gqa", "nlvr", "caption")


def run_dir_for(args, kind: str, video: bool = False) -> Path:
    if args.output and args.output != "snap/test":
        return Path(args.output)
    name = args.run_name or time.strftime("%Y%m%d-%H%M%S")
    return Path("snap") / f"{'VLBart' if kind == 'bart' else 'VLT5'}_multitask{'_video' if video else ''}" / name


class RunLog:
    """Human log + metrics.jsonl (+ TensorBoard, + wandb when asked) on the main process."""

    def __init__(self, run_dir: Path, enabled: bool, use_wandb: bool, config: dict):
        self.dir, self.enabled = run_dir, enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if use_wandb:
            import wandb

            self.wandb = wandb.init(project="vl-pet", name=run_dir.name, dir=str(run_dir), config=config)

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)
            with open(self.dir / "log.txt", "a") as f:
                f.write(text + "\n")

    def metrics(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        flat = {f"{k}/{t}": v for k, sub in record.items() if isinstance(sub, dict) for t, v in sub.items()
                if number(v)}  # e.g. val/vqa, best/avg; not the video test file paths
        flat.update({k: v for k, v in record.items() if number(v)})
        if self.tb is not None:
            for key, value in flat.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(flat, step=step)


class DeviceLoader:
    """Moves every tensor of a batch to ``device``; keeps ``len`` and ``set_epoch``."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.dataset = getattr(loader, "dataset", None)  # evaluation reads the references from it

    def __len__(self):
        return len(self.loader)

    @property
    def steps_per_epoch(self) -> int:
        return self.loader.steps_per_epoch

    @property
    def start(self) -> int:
        return self.loader.start

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.loader.set_epoch(epoch, start)

    def __iter__(self):
        for batch in self.loader:
            yield to_device(batch, self.device)  # non-blocking from pinned memory; float16 features widened there


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def task_list(args) -> list[str]:
    """``--tasks`` as a list (default: the four image-text tasks); unknown names are an error."""
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or list(IMAGE_TASKS)
    unknown = [t for t in tasks if t not in IMAGE_TASKS + VIDEO_TASKS]
    if unknown:
        raise ValueError(f"--tasks {','.join(unknown)}: unknown task(s); choose image-text tasks from "
                         f"{','.join(IMAGE_TASKS)} or video-text tasks from {','.join(VIDEO_TASKS)}")
    return tasks


def build_data(args, tokenizer, main: bool, tasks: list[str], video: bool, n_frames: int, feat_dim: int) -> dict:
    """Train loader (a ``MultitaskLoader``) on every rank; val and test loaders on the main process only (as the
    official trainers). ``video`` picks the VALUE video data (``n_frames`` = ``--n_boxes``), else the image-text data.
    Every split the run uses is checked first (``check_split``): not empty, features of dimension ``feat_dim``."""
    if video:
        layout = VideoLayout(args.datasets_root)
        prompts = video_task_prompts(args.use_tasks_prompts)
        loaders_of = build_video_loaders

        def datasets(phase: str, limit: int | None) -> dict:
            return build_video_datasets(layout, tokenizer, phase, tasks, prompts, limit, n_frames)
    else:
        layout = DataLayout(args.datasets_root)
        prompts = task_prompts(args.use_tasks_prompts, args.fix_gqa_prompt)
        loaders_of = build_loaders

        def datasets(phase: str, limit: int | None) -> dict:
            return build_datasets(layout, tokenizer, phase, tasks, prompts, limit)
    limit = lambda topk: int(topk) if topk and topk > 1 else None  # noqa: E731  (official --train_topk > 1: first N)
    phases = (["train", "val"] if args.epochs > 0 else []) + ["test"]
    built = {phase: datasets(phase, limit(args.train_topk if phase == "train" else args.valid_topk))
             for phase in ("train", "val", "test") if phase == "train" or main}
    for phase in phases:
        for task, ds in built.get(phase, {}).items():
            check_split(ds, task, phase, feat_dim)
    loaders = {"train": MultitaskLoader(loaders_of(built["train"], args.batch_size, True, args.num_workers),
                                        args.seed)}
    if main:  # the official code validates and tests on rank 0 only
        for phase in ("val", "test"):
            loaders[phase] = loaders_of(built[phase], args.batch_size, False, args.num_workers)
    return loaders


def check_split(ds, task: str, phase: str, feat_dim: int) -> None:
    """A split the run uses must hold examples, and its features must have ``feat_dim`` channels (one example is
    read, with the global RNGs left as they were)."""
    files = ", ".join(str(f) for f in getattr(ds, "sources", [])) or getattr(ds, "split", "?")
    if len(ds) == 0:
        raise DataError(f"the {phase} split of {task} is empty ({files}): it has no examples", None)
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        dim = np.asarray(ds[0]["vis_feats"]).shape[-1]
    finally:
        random.setstate(state[0]), np.random.set_state(state[1]), torch.set_rng_state(state[2])
    if dim != feat_dim:
        raise DataError(f"the {task} features have {dim} channels but the model expects --feat_dim {feat_dim} "
                        f"({files}): pass --feat_dim {dim} or point --datasets_root at the right features", None)


def load_source(kind: str, name: str, load):
    """``load(name)`` for a tokenizer or backbone, with one clear error: a local path that does not exist, or a hub
    id that is neither a local folder nor in the local Hugging Face cache (offline)."""
    head = name.split("/", 1)[0]
    looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or ("/" in name and Path(head).is_dir())
    if looks_local and not Path(name).expanduser().exists():
        raise ValueError(f"the {kind} {name} does not exist (a folder saved with save_pretrained, or a hub id)")
    try:
        return load(name)
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load the {kind} {name}: {reason}. If it is a hub id and this machine is offline, "
                         f"it is not in the local cache; download it first with `hf download {name}` (or pass a "
                         "local folder)") from None


@records_status
def train(args, runs: list | None = None) -> int:
    """The whole run; the ``Run`` object is appended to ``runs`` (for the messages of ``run``)."""
    d = init_distributed(args.device)
    model_cfg = model_config_from_args(args, args.explicit)
    pet_cfg = pet_config_from_args(args)
    tokenizer = load_source("tokenizer", args.tokenizer or args.backbone, load_tokenizer)
    model_cfg = type(model_cfg)(**{**vars(model_cfg), "vocab_size": len(tokenizer)})
    names = task_list(args)
    video = is_video(names)
    loaders = build_data(args, tokenizer, d.main, names, video, model_cfg.n_boxes, model_cfg.feat_dim)
    seed_everything(args.seed)
    model = load_source("backbone", model_cfg.backbone, lambda _: build_model(model_cfg, pet_cfg)).to(d.device)
    loaded = load_initial_weights(model, args.load) if args.load and not args.resume else None
    run_dir = run_dir_for(args, model.kind, video)
    with RunLock(run_dir) if d.main else contextlib.nullcontext():
        if d.main and not args.resume and latest_checkpoint(run_dir) is not None:
            raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
        config = {"model": to_dict(model_cfg), "pet": to_dict(pet_cfg),
                  "args": {k: v for k, v in vars(args).items() if k != "explicit"}}
        log = RunLog(run_dir, d.main, args.wandb, config)
        if d.main:
            (run_dir / "config.json").write_text(json.dumps(config, indent=1, default=str))
        counts = count_parameters(model)
        log.line(percentage_line(*counts))
        if loaded:
            log.line(f"loaded weights from {loaded}")
        if not loaded and (side := init_side_network(model, loaders["train"], run_dir, save=d.main)):
            log.line(side)  # LST: the side network starts as the Fisher-pruned backbone (Fisher saved in run_dir)
        session = Run(args, d, model, tokenizer, loaders, run_dir, config, log, names)
        if runs is not None:
            runs.append(session)
        summary = RunSummary.begin(run_dir, "train", config, counts, args.seed, enabled=d.main)
        session.fit()
        summary.close("finished")
    shutdown(d)
    return 0


class Run:
    """One training run: the epochs (train, validate, save), then the test; ``phase`` says where it is, so that an
    interrupt saves what can be resumed (``StepSaver.save_interrupted``) and the message says what exists."""

    def __init__(self, args, d: Dist, model, tokenizer, loaders: dict, run_dir: Path, config: dict, log: RunLog,
                 names: list[str]):
        self.args, self.d, self.model, self.tokenizer, self.loaders = args, d, model, tokenizer, loaders
        self.run_dir, self.config, self.log = run_dir, config, log
        self.train_loader = DeviceLoader(loaders["train"], d.device)
        self.optimizer = HFAdamW(param_groups(model, args.weight_decay), lr=args.lr, eps=args.adam_eps)
        self.scheduler = linear_warmup_schedule(self.optimizer, args.epochs * self.train_loader.steps_per_epoch,
                                                args.warmup_ratio)
        self.autocast = torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=args.bf16)
        self.tasks = tasks_for(names, args.num_beams, args.gen_max_length)
        self.speed = speed.speed_config_from_args(args)
        speed.apply_backends(self.speed)
        speed.apply_model_options(model, self.speed, d.device)
        self.tracker = BestTracker(args.tasks)
        self.saver = StepSaver(run_dir, model, config, self.optimizer, self.scheduler, self.tracker,
                               args.save_every_steps, d.main)

    def fit(self) -> None:
        args, d = self.args, self.d
        start, first, step, pending = 0, 0, 0, None
        if args.resume:
            start, first, step, pending = self._resume()
        net = _wrap(speed.compile_model(self.model, self.speed, d.device), d, self.config["pet"]["method"])
        steps_per_epoch = self.train_loader.steps_per_epoch
        for epoch in range(start, args.epochs):
            if pending is not None and epoch == start:  # resumed between an epoch's training and its validation
                out = dict(pending)
            else:
                self.train_loader.set_epoch(epoch, first if epoch == start else 0)
                self.saver.begin_epoch(epoch, self.train_loader.start, steps_per_epoch, step)
                with self.autocast:
                    out = train_epoch(net, self.train_loader, self.optimizer, self.scheduler, args.clip_grad_norm,
                                      epoch, step, show=d.main and not args.no_progress, on_step=self.saver.on_step,
                                      tasks=self.tasks, nan_check_every=self.speed.nan_check_every)
                step = out.pop("step")
            self.saver.end_training(out)
            record = {"epoch": epoch, "step": step, "lr": self.scheduler.get_last_lr()[0], "train": out}
            if d.main:
                record["val"] = _evaluate(self.tasks, self.model, self.loaders["val"], self.tokenizer, d,
                                          self.autocast)
                improved = self.tracker.update(epoch, record["val"])
                record["best"] = dict(self.tracker.best)
                with defer_signals():  # the epoch's record and its checkpoint together, or neither
                    self.log.line(f"epoch {epoch}: loss {out['loss']:.4f} | val " +
                                  " ".join(f"{t} {s:.2f}" for t, s in record["val"].items()) + " | best " +
                                  " ".join(f"{t} {s:.2f}@{self.tracker.best_epoch[t]}"
                                           for t, s in self.tracker.best.items()))
                    self.log.metrics(record, step)
                    self.saver.save_epoch(improved)
            barrier(d)
        self.saver.phase = "test"
        if d.main:
            _test(args, self.tasks, self.model, self.loaders["test"], self.tokenizer, self.run_dir, d,
                  self.autocast, self.log, self.tracker, step)

    def _resume(self):
        """Load the newest usable checkpoint: (first epoch, its first step, global step, the epoch's train record
        when it was saved between training and validation, else None)."""
        state, path = resume_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.log)
        if state is None:
            self.log.line(f"--resume: no checkpoint in {self.run_dir} yet; starting from the beginning")
            return 0, 0, 0, None
        total = self.train_loader.steps_per_epoch
        epoch, done = state["epoch"], state.get("epoch_step", total)
        if done > total:
            raise CheckpointError(f"{path} was saved at step {done} of epoch {epoch}, but an epoch now has "
                                  f"{total} steps: resume with the data and --batch_size of the run")
        self.tracker.restore(state.get("tracker"))
        self.log.line(f"resumed from {path} (epoch {epoch}, step {done}/{total} of it, global step {state['step']})")
        if state.get("phase") == "validate":
            self.saver.begin_epoch(epoch, done, total, state["step"])
            return epoch, done, state["step"], state.get("train", {})
        start, first = (epoch, done) if done < total else (epoch + 1, 0)
        return start, first, state["step"], None

def _test(args, tasks: dict, model, loaders: dict, tokenizer, run_dir: Path, d: Dist, autocast, log: RunLog,
          tracker: BestTracker, step: int) -> None:
    """The test phase on the last weights: labelled splits are scored; unlabelled ones (video) write their
    submission files, then again from the BEST weights when a BEST checkpoint was saved (the official video trainer).
    Prints the final JSON line."""
    scored = {t: loader for t, loader in loaders.items() if tasks[t].labelled_test}
    unlabelled = {t: DeviceLoader(loader, d.device) for t, loader in loaders.items() if not tasks[t].labelled_test}
    test = _evaluate(tasks, model, scored, tokenizer, d, autocast) if scored else {}
    files: dict[str, dict[str, str]] = {}
    if unlabelled:
        model.eval()
        with autocast:
            files["LAST"] = _submissions(tasks, model, unlabelled, tokenizer, run_dir)
            if (run_dir / BEST).is_dir():
                load_checkpoint(run_dir / BEST, model)
                files[BEST] = _submissions(tasks, model, unlabelled, tokenizer, run_dir, BEST_SUFFIX)
    log.metrics({"test": test, "test_predictions": files, "epoch": args.epochs - 1}, step)
    if test:
        log.line("test (last epoch): " + " ".join(f"{t} {s:.2f}" for t, s in test.items()))
    for name, written in files.items():
        log.line(f"test predictions ({name} weights): " + " ".join(written.values()))
    print(json.dumps({"run_dir": str(run_dir), "test": test, "val": tracker.last, "best_val": tracker.best,
                      "best_epoch": tracker.best_epoch, "test_predictions": files}))


def _submissions(tasks: dict, model, loaders: dict, tokenizer, run_dir: Path, suffix: str = "") -> dict[str, str]:
    return {t: str(tasks[t].write_submission(model, loader, tokenizer, run_dir / tasks[t].submission_name(suffix)))
            for t, loader in loaders.items()}


def load_initial_weights(model, load: str) -> Path:
    """``--load X``: initial weights, as the official flag (``X`` or ``X.pth``, the official full state dict with or
    without ``module.``), or one of our checkpoint folders (``X`` holding ``pet_weights.safetensors``, e.g.
    ``snap/…/LAST`` or ``BEST``). Unlike the official ``strict=False``, keys that do not fit are one error naming
    them. With ``--epochs 0`` the run only tests (the official multitask_infer)."""
    from ..pet.official import load_official_state_dict, read_checkpoint

    path = Path(load)
    if (path / "pet_weights.safetensors").is_file():
        load_checkpoint(path, model)
        return path
    for candidate in (path, Path(f"{load}.pth")):
        if candidate.is_file():
            load_official_state_dict(model, read_checkpoint(candidate))
            return candidate
    raise CheckpointError(f"--load {load}: neither a checkpoint folder ({path / 'pet_weights.safetensors'}) nor an "
                          f"official state dict ({path} or {load}.pth) exists")


def resume_state(run_dir: Path, model, optimizer, scheduler, log: RunLog) -> tuple[dict | None, Path | None]:
    """Load ``LATEST`` (or, when it is unreadable or corrupt, the previous checkpoint kept beside it) into the
    model, optimizer and scheduler; (None, None) when nothing was saved yet."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None, None
    try:
        return load_checkpoint(latest, model, optimizer, scheduler), latest
    except CheckpointError as err:
        previous = previous_checkpoint(latest)
        if previous is None:
            raise CheckpointError(f"cannot resume: {err}; no previous checkpoint is kept beside it. Start a new run "
                                  f"with another --output (or --load an older checkpoint folder)") from None
        log.line(f"warning: {err}; falling back to the previous checkpoint {previous}")
        try:
            return load_checkpoint(previous, model, optimizer, scheduler), previous
        except CheckpointError as older:
            raise CheckpointError(f"cannot resume: {err}; and the previous one: {older}") from None


class StepSaver:
    """The run's checkpoints: every ``every`` optimizer steps (``--save_every_steps``), at each epoch's end, and
    when a stop signal interrupts the run. ``phase`` is "train", "validate" (the epoch is trained, not yet validated
    and saved), "saved" (the epoch's checkpoint is written) or "test". The state names the epoch and its completed
    steps (``epoch_step``), so ``--resume`` continues at the next batch, or validates a trained epoch first; the
    RNG states are those right after the last step, as an uninterrupted run had them. ``LAST`` keeps the previous
    checkpoint beside it (``LAST.prev``)."""

    def __init__(self, run_dir: Path, model, config: dict, optimizer, scheduler, tracker: BestTracker, every: int,
                 main: bool):
        self.run_dir, self.model, self.config = run_dir, model, config
        self.optimizer, self.scheduler, self.tracker = optimizer, scheduler, tracker
        self.every, self.main = every, main
        self.epoch, self.first, self.done, self.total, self.step, self.rng = 0, 0, 0, 0, 0, None
        self.phase, self.train_out, self.saved_at = "train", None, None

    def begin_epoch(self, epoch: int, first: int, steps_per_epoch: int, step: int) -> None:
        self.epoch, self.first, self.done, self.total, self.step = epoch, first, first, steps_per_epoch, step
        self.phase, self.saved_at = "train", (epoch, first, "train")

    def on_step(self, done: int, step: int) -> None:
        """Called by ``train_epoch`` after each optimizer step (``done`` steps of this epoch, ``step`` in all)."""
        self.done, self.step = done, step
        if not self.main:
            return
        self.rng = capture_rng()
        if self.every and step % self.every == 0 and done < self.total:
            self._save_last()

    def end_training(self, out: dict) -> None:
        self.phase, self.train_out, self.done = "validate", out, self.total

    def save_epoch(self, improved: bool) -> None:
        """The epoch's checkpoints: ``BEST`` when the selection average improved (video), then ``LAST``."""
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.total, "tracker": self.tracker.state()}
        with defer_signals():  # a stop signal waits until the checkpoints and LATEST are all written
            if improved:  # video: a new best 4-task validation average (the official best_avg_valid_model)
                save_checkpoint(self.run_dir / BEST, self.model, self.config, state)
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, state, self.optimizer, self.scheduler,
                            keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.phase = "saved"  # inside: a signal held during the save must see it saved

    def save_interrupted(self) -> None:
        """Save the position reached, unless it is already saved (or nothing was done since the last save)."""
        if not self.main or self.phase not in ("train", "validate"):
            return
        if self.saved_at == (self.epoch, self.done, self.phase):
            return
        if self.phase == "train" and self.done == self.first:
            return
        self._save_last(self.rng)

    def _state(self) -> dict:
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.done, "tracker": self.tracker.state(),
                 "phase": self.phase}
        if self.phase == "validate":
            state["train"] = self.train_out
        return state

    def _save_last(self, rng=None) -> None:
        with defer_signals():
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, self._state(), self.optimizer,
                            self.scheduler, rng=rng, keep_previous=True)
            mark_latest(self.run_dir, "LAST")
            self.saved_at = (self.epoch, self.done, self.phase)  # inside, for the same reason


def _wrap(model, d: Dist, method: str):
    if not d.enabled:
        return model
    ids = [d.device.index] if d.device.type == "cuda" else None
    # Buffers are constants built identically on every rank (same seed); some stock HF buffers are expanded views
    # that DDP's per-forward broadcast cannot write into.
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                                     find_unused_parameters=method == "hyperformer")


def _evaluate(tasks: dict, model, loaders: dict, tokenizer, d: Dist, autocast) -> dict[str, float]:
    model.eval()
    with autocast:
        return evaluate(model, {t: DeviceLoader(loader, d.device) for t, loader in loaders.items()}, tokenizer,
                        tasks=tasks)


def run(args) -> int:
    """Entry point: one clear message and a non-zero exit for user errors; nothing overwritten. Stop signals
    (Ctrl-C, SIGTERM, SIGUSR1) save the position reached and exit 128 + the signal number."""
    runs: list[Run] = []
    try:
        with stop_signals():
            try:
                return train(args, runs)
            except KeyboardInterrupt:
                if runs:
                    with defer_signals():
                        runs[0].saver.save_interrupted()
                raise
    except KeyboardInterrupt as stop:
        return _stopped(stop if isinstance(stop, Interrupted) else Interrupted(), runs)
    except (DataError, CheckpointError, RunLockedError, ValueError) as err:
        if isinstance(err, NonFiniteStateError):
            return _non_finite(err, runs)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        return _non_finite(err, runs)
    except OSError as err:
        where = err.filename or "a file"
        print(f"error: cannot write or read {where}: {err.strerror or err}; {_kept(runs)}", file=sys.stderr)
        return 74


def _kept(runs: list) -> str:
    """What the run folder holds to continue from, in words."""
    if not runs or not runs[0].d.main:
        return "nothing was saved (the run had not started)"
    return f"{describe_checkpoint(runs[0].run_dir)} is what remains to resume from"


def _stopped(stop: Interrupted, runs: list) -> int:
    name = stop.args[0] if stop.args else "SIGINT"
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
    print(f"error: training stopped: {err}; nothing non-finite was saved: {_kept(runs)}", file=sys.stderr)
    return 3


def main(argv: list[str] | None = None) -> int:
    """``python -m vlpet train`` (parsing and validation in ``train.cli``, before torch is imported)."""
    from .cli import main as cli_main

    return cli_main(argv)
