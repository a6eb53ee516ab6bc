"""``python -m vlpet train``: the multi-task trainer (pipeline spec §4) with the published flag names.

train → validate every epoch → test the last epoch → ``snap/<VLBart|VLT5>_multitask/<run name>/`` with ``log.txt``,
``metrics.jsonl``, ``config.json``, TensorBoard events (when tensorboard is installed) and checkpoints holding only
what was trained. ``--resume`` continues from the latest epoch checkpoint; torchrun gives DDP (gloo on CPU).

``--tasks tvqa,how2qa,tvc,yc2c`` runs the video-text trainer (``train.video``; ``snap/<…>_multitask_video/``): the
same loop, video validation metrics, a ``BEST`` checkpoint on the 4-task validation average, and VALUE submission
files for the unlabelled test splits instead of test scores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..config import to_dict
from ..data.layout import DataError, DataLayout
from ..data.multitask import MultitaskLoader, build_datasets, build_loaders, task_prompts
from ..data.tokenizer import load_tokenizer
from ..data.video import VideoLayout, build_video_datasets, build_video_loaders, video_task_prompts
from ..models.build import build_model
from ..pet.lst import init_side_network
from ..param import build_parser, explicit_dests, model_config_from_args, pet_config_from_args
from ..pet.official import CheckpointError
from ..pet.trainable import count_parameters, percentage_line
from .checkpoint import capture_rng, defer_sigint, latest_checkpoint, load_checkpoint, mark_latest, save_checkpoint
from .distributed import Dist, barrier, init_distributed, shutdown
from .loop import BestTracker, NonFiniteLossError, evaluate, tasks_for, train_epoch
from .video import BEST, BEST_SUFFIX, VIDEO_TASKS, is_video
from .optim import HFAdamW, linear_warmup_schedule, param_groups

IMAGE_TASKS = ("vqa", "gqa", "nlvr", "caption")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Our own flags, next to the official ones (which ``build_parser`` adds)."""
    ours = parser.add_argument_group("vlpet trainer")
    ours.add_argument("--datasets_root", default=None, help="data root (default: ./datasets, then ../datasets)")
    ours.add_argument("--resume", action="store_true", help="continue the run in --output from its latest checkpoint")
    ours.add_argument("--save_every_steps", type=int, default=0,
                      help="also checkpoint every N optimizer steps inside an epoch (0: at epoch ends only)")
    ours.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 is the faithful default)")
    ours.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    ours.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ours.add_argument("--no_progress", action="store_true", help="hide the tqdm progress bars")
    ours.add_argument("--fix_gqa_prompt", action="store_true", help='use "gqa: " instead of the official "gpa: "')


def make_parser() -> argparse.ArgumentParser:
    parser = build_parser("python -m vlpet train", __doc__)
    add_arguments(parser)
    return parser


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
            yield {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}


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


def build_data(args, tokenizer, main: bool, tasks: list[str], video: bool, n_frames: int) -> dict:
    """Train loader (a ``MultitaskLoader``) on every rank; val and test loaders on the main process only (as the
    official trainers). ``video`` picks the VALUE video data (``n_frames`` = ``--n_boxes``), else the image-text data."""
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
    train = datasets("train", limit(args.train_topk))
    loaders = {"train": MultitaskLoader(loaders_of(train, args.batch_size, True, args.num_workers), args.seed)}
    if main:  # the official code validates and tests on rank 0 only
        for phase in ("val", "test"):
            loaders[phase] = loaders_of(datasets(phase, limit(args.valid_topk)), args.batch_size, False,
                                        args.num_workers)
    return loaders


def train(args) -> int:
    d = init_distributed(args.device)
    seed_everything(args.seed)
    model_cfg = model_config_from_args(args, args.explicit)
    pet_cfg = pet_config_from_args(args)
    tokenizer = load_tokenizer(args.tokenizer or args.backbone)
    model_cfg = type(model_cfg)(**{**vars(model_cfg), "vocab_size": len(tokenizer)})
    names = task_list(args)
    video = is_video(names)
    model = build_model(model_cfg, pet_cfg).to(d.device)
    loaded = load_initial_weights(model, args.load) if args.load else None
    run_dir = run_dir_for(args, model.kind, video)
    if d.main and not args.resume and latest_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
    config = {"model": to_dict(model_cfg), "pet": to_dict(pet_cfg), "args": {k: v for k, v in vars(args).items()
                                                                            if k != "explicit"}}
    log = RunLog(run_dir, d.main, args.wandb, config)
    if d.main:
        (run_dir / "config.json").write_text(json.dumps(config, indent=1, default=str))
    log.line(percentage_line(*count_parameters(model)))
    if loaded:
        log.line(f"loaded weights from {loaded}")
    loaders = build_data(args, tokenizer, d.main, names, video, model_cfg.n_boxes)
    if not loaded and (side := init_side_network(model, loaders["train"], run_dir, save=d.main)):
        log.line(side)  # LST: the side network starts as the Fisher-pruned backbone (Fisher saved in run_dir)
    train_loader = DeviceLoader(loaders["train"], d.device)
    steps_per_epoch = train_loader.steps_per_epoch
    optimizer = HFAdamW(param_groups(model, args.weight_decay), lr=args.lr, eps=args.adam_eps)
    scheduler = linear_warmup_schedule(optimizer, args.epochs * steps_per_epoch, args.warmup_ratio)
    start, first, step, tracker = 0, 0, 0, BestTracker(args.tasks)
    if args.resume:
        start, first, step, tracker = _resume(args, run_dir, model, optimizer, scheduler, steps_per_epoch, log)
    net = _wrap(model, d, pet_cfg.method)
    autocast = torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=args.bf16)
    tasks = tasks_for(names, args.num_beams, args.gen_max_length)
    saver = StepSaver(run_dir, model, config, optimizer, scheduler, tracker, args.save_every_steps, d.main)
    for epoch in range(start, args.epochs):
        train_loader.set_epoch(epoch, first if epoch == start else 0)
        saver.begin_epoch(epoch, train_loader.start, steps_per_epoch)
        try:
            with autocast:
                out = train_epoch(net, train_loader, optimizer, scheduler, args.clip_grad_norm, epoch, step,
                                  show=d.main and not args.no_progress, on_step=saver.on_step, tasks=tasks)
        except KeyboardInterrupt:
            saver.save_interrupted()
            raise
        step = out.pop("step")
        record = {"epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0], "train": out}
        if d.main:
            record["val"] = _evaluate(tasks, model, loaders["val"], tokenizer, d, autocast)
            improved = tracker.update(epoch, record["val"])
            record["best"] = dict(tracker.best)
            state = {"epoch": epoch, "step": step, "epoch_step": steps_per_epoch, "tracker": tracker.state()}
            with defer_sigint():  # Ctrl-C waits until the checkpoints and LATEST are all written
                if improved:  # video: a new best 4-task validation average (the official best_avg_valid_model)
                    save_checkpoint(run_dir / BEST, model, config, state)
                save_checkpoint(run_dir / "LAST", model, config, state, optimizer, scheduler)
                mark_latest(run_dir, "LAST")
            log.line(f"epoch {epoch}: loss {out['loss']:.4f} | val " +
                     " ".join(f"{t} {s:.2f}" for t, s in record["val"].items()) + " | best " +
                     " ".join(f"{t} {s:.2f}@{tracker.best_epoch[t]}" for t, s in tracker.best.items()))
        log.metrics(record, step)
        barrier(d)
    if d.main:
        _test(args, tasks, model, loaders["test"], tokenizer, run_dir, d, autocast, log, tracker, step)
    shutdown(d)
    return 0


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


def _resume(args, run_dir: Path, model, optimizer, scheduler, steps_per_epoch: int, log: RunLog):
    """Load ``LATEST``: returns (first epoch, its first step, global step, best tracker)."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise CheckpointError(f"--resume: no checkpoint in {run_dir} (expected {run_dir / 'LATEST'})")
    state = load_checkpoint(latest, model, optimizer, scheduler)
    epoch, done = state["epoch"], state.get("epoch_step", steps_per_epoch)
    if done > steps_per_epoch:
        raise CheckpointError(f"{latest} was saved at step {done} of epoch {epoch}, but an epoch now has "
                              f"{steps_per_epoch} steps: resume with the data and --batch_size of the run")
    log.line(f"resumed from {latest} (epoch {epoch}, step {done}/{steps_per_epoch} of it, global step "
             f"{state['step']})")
    start, first = (epoch, done) if done < steps_per_epoch else (epoch + 1, 0)
    return start, first, state["step"], BestTracker(args.tasks, state.get("tracker"))


class StepSaver:
    """Mid-epoch checkpoints: every ``every`` optimizer steps (``--save_every_steps``) and when Ctrl-C stops an
    epoch. The state names the epoch and its completed steps (``epoch_step``), so ``--resume`` continues at the
    next batch; the RNG states are those right after that step, as an uninterrupted run had them."""

    def __init__(self, run_dir: Path, model, config: dict, optimizer, scheduler, tracker: BestTracker, every: int,
                 main: bool):
        self.run_dir, self.model, self.config = run_dir, model, config
        self.optimizer, self.scheduler, self.tracker = optimizer, scheduler, tracker
        self.every, self.main = every, main
        self.epoch, self.first, self.done, self.step, self.rng = 0, 0, 0, 0, None

    def begin_epoch(self, epoch: int, first: int, steps_per_epoch: int) -> None:
        self.epoch, self.first, self.done, self.total = epoch, first, first, steps_per_epoch

    def on_step(self, done: int, step: int) -> None:
        """Called by ``train_epoch`` after each optimizer step (``done`` steps of this epoch, ``step`` in all)."""
        self.done, self.step = done, step
        if not self.main:
            return
        self.rng = capture_rng()
        if self.every and step % self.every == 0 and done < self.total:
            self._save()

    def save_interrupted(self) -> None:
        """Save the position of the last completed step of this epoch (nothing when no step was done)."""
        if self.main and self.done > self.first:
            self._save(self.rng)

    def _save(self, rng=None) -> None:
        state = {"epoch": self.epoch, "step": self.step, "epoch_step": self.done, "tracker": self.tracker.state()}
        with defer_sigint():
            save_checkpoint(self.run_dir / "LAST", self.model, self.config, state, self.optimizer, self.scheduler,
                            rng=rng)
            mark_latest(self.run_dir, "LAST")


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
    """Entry point: one clear message and a non-zero exit for user errors; nothing overwritten."""
    try:
        return train(args)
    except (DataError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: training stopped: {err}; the last good checkpoint is kept", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: the checkpoint of the last completed step is kept; continue with the same command plus "
              "--resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser()
    args = parser.parse_args(argv)
    args.explicit = explicit_dests(parser, argv)
    return run(args)
