"""One training run once assembled: the epochs (train, validate, save) and the test phase."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..pet.official import CheckpointError
from ..pet.peft_bridge import tuner_hooks
from . import speed
from .checkpoint import load_checkpoint
from .device import DeviceLoader
from .distributed import Dist, barrier
from .interrupts import defer_signals
from .loop import BestTracker, EpochLosses, evaluate, tasks_for, train_epoch
from .optim import HFAdamW, linear_warmup_schedule, param_groups
from .resume import resume_state
from .runlog import RunLog
from .saver import StepSaver, restore_rank_rng
from .shard import gather
from .video import BEST, BEST_SUFFIX


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
        self.hooks = tuner_hooks(model)  # a peft tuner's loop hooks (AdaLoRA's rank schedule), else None
        self.saver = StepSaver(run_dir, model, config, self.optimizer, self.scheduler, self.tracker,
                               args.save_every_steps, d.main, d.rank, self.hooks)

    def fit(self) -> None:
        args, d = self.args, self.d
        start, first, step, pending, self.carry = 0, 0, 0, None, None
        if args.resume:
            start, first, step, pending = self._resume()
        net = _wrap(speed.compile_model(self.model, self.speed, d.device), d, self.config["pet"]["method"])
        steps_per_epoch = self.train_loader.steps_per_epoch
        for epoch in range(start, args.epochs):
            if pending is not None and epoch == start:  # resumed between an epoch's training and its validation
                out = dict(pending)
            else:
                self.train_loader.set_epoch(epoch, first if epoch == start else 0)
                losses = EpochLosses(self.carry if epoch == start else None)  # a resumed epoch's earlier steps
                self.saver.begin_epoch(epoch, self.train_loader.start, steps_per_epoch, step, losses)
                with self.autocast:
                    out = train_epoch(net, self.train_loader, self.optimizer, self.scheduler, args.clip_grad_norm,
                                      epoch, step, show=d.main and not args.no_progress, on_step=self.saver.on_step,
                                      tasks=self.tasks, nan_check_every=self.speed.nan_check_every,
                                      hooks=self.hooks, losses=losses,
                                      micro_batch_size=self.speed.micro_batch_size)
                step = out.pop("step")
            self.saver.end_training(out)
            if pending is None or epoch != start:  # a resumed trained epoch is already saved so
                self.saver.save_trained()
            record = {"epoch": epoch, "step": step, "lr": self.scheduler.get_last_lr()[0], "train": out}
            val = _evaluate(self.tasks, self.model, self.loaders["val"], self.tokenizer, d, self.autocast)
            if d.main:  # every rank predicted its share of the splits; rank 0 has scored them all
                record["val"] = val
                improved = self.tracker.update(epoch, record["val"])
                record["best"] = dict(self.tracker.best)
                with defer_signals():  # the epoch's record and its checkpoint together, or neither
                    # shown from 1 (epoch 1/E, best @1), as the demo and the plots; the records keep the index
                    self.log.line(f"epoch {epoch + 1}/{args.epochs}: loss {out['loss']:.4f} | val " +
                                  " ".join(f"{t} {s:.2f}" for t, s in record["val"].items()) + " | best " +
                                  " ".join(f"{t} {s:.2f}@{self.tracker.best_epoch[t] + 1}"
                                           for t, s in self.tracker.best.items()))
                    self.log.metrics(record, step)
                    self.saver.save_epoch(improved)
            else:
                self.saver.save_epoch(False)  # this rank's RNG states beside rank 0's checkpoint
            barrier(d)
        self.saver.phase = "test"
        _test(args, self.tasks, self.model, self.loaders["test"], self.tokenizer, self.run_dir, d, self.autocast,
              self.log, self.tracker, step)

    def _resume(self):
        """Load the newest usable checkpoint: (first epoch, its first step, global step, the epoch's train record
        when it was saved between training and validation, else None)."""
        state, path = resume_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.log)
        if state is None:
            self.log.line(f"--resume: no checkpoint in {self.run_dir} yet; starting from the beginning")
            return 0, 0, 0, None
        if not self.d.main and (warning := restore_rank_rng(self.run_dir, self.d.rank, state, self.args.seed)):
            print(warning, file=sys.stderr)
        total = self.train_loader.steps_per_epoch
        epoch, done = state["epoch"], state.get("epoch_step", total)
        if done > total:
            raise CheckpointError(f"{path} was saved at step {done} of epoch {epoch + 1}, but an epoch now has "
                                  f"{total} steps: resume with the data and --batch_size of the run")
        self.tracker.restore(state.get("tracker"))
        if self.hooks is not None:
            self.hooks.restore(state.get("tuner"))
        self.log.line(f"resumed from {path} (epoch {epoch + 1}, step {done}/{total} of it, global step "
                      f"{state['step']})")
        if state.get("phase") == "validate":
            self.saver.begin_epoch(epoch, done, total, state["step"])
            return epoch, done, state["step"], state.get("train", {})
        start, first = (epoch, done) if done < total else (epoch + 1, 0)
        if done < total:
            self.carry = state.get("losses")  # the epoch's losses before the checkpoint (older checkpoints: none)
        return start, first, state["step"], None

def _test(args, tasks: dict, model, loaders: dict, tokenizer, run_dir: Path, d: Dist, autocast, log: RunLog,
          tracker: BestTracker, step: int) -> None:
    """The test phase on the last weights: labelled splits are scored; unlabelled ones (video) write their
    submission files, then again from the BEST weights when a BEST checkpoint was saved (the official video trainer).
    Every rank predicts its share of the splits; rank 0 scores them, writes the files and prints the final JSON
    line."""
    scored = {t: loader for t, loader in loaders.items() if tasks[t].labelled_test}
    unlabelled = {t: DeviceLoader(loader, d.device) for t, loader in loaders.items() if not tasks[t].labelled_test}
    test = _evaluate(tasks, model, scored, tokenizer, d, autocast) if scored else {}
    files: dict[str, dict[str, str]] = {}
    if unlabelled:
        model.eval()
        with autocast:
            files["LAST"] = _submissions(tasks, model, unlabelled, tokenizer, run_dir, d)
            if (run_dir / BEST).is_dir():
                load_checkpoint(run_dir / BEST, model)
                files[BEST] = _submissions(tasks, model, unlabelled, tokenizer, run_dir, d, BEST_SUFFIX)
    if not d.main:
        return
    log.metrics({"test": test, "test_predictions": files, "epoch": args.epochs - 1}, step)
    if test:
        log.line("test (last epoch): " + " ".join(f"{t} {s:.2f}" for t, s in test.items()))
    for name, written in files.items():
        log.line(f"test predictions ({name} weights): " + " ".join(written.values()))
    print(json.dumps({"run_dir": str(run_dir), "test": test, "val": tracker.last, "best_val": tracker.best,
                      "best_epoch": tracker.best_epoch, "test_predictions": files}))


def _submissions(tasks: dict, model, loaders: dict, tokenizer, run_dir: Path, d: Dist,
                 suffix: str = "") -> dict[str, str]:
    """Each rank predicts its share; rank 0 writes the files ({} on the other ranks)."""
    files = {}
    for t, loader in loaders.items():
        predictions = gather(tasks[t].submission(model, loader, tokenizer), d.rank, d.world_size)
        if predictions is not None:
            files[t] = str(tasks[t].write(predictions, run_dir / tasks[t].submission_name(suffix)))
    return files


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
                        tasks=tasks, gather=lambda predictions: gather(predictions, d.rank, d.world_size))
