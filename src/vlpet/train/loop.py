"""The multi-task train / evaluate loop following the official trainers (pipeline spec §4-§5).

* ``train_epoch``: one pass over a ``MultitaskLoader``; each single-task batch's loss is its task's official loss
  (``vlpet.tasks``), backward, ``clip_grad_norm_``, optimizer step, scheduler step, grads set to None. A NaN/inf loss
  stops the run with an error naming the step and the task (under DDP every rank stops at the same check).
* ``evaluate``: per-task scores on the paper's scale: each task predicts its loader and scores the predictions.
* ``BestTracker``: the official per-task best values (and the video 4-task average that picks ``BEST``).

The loop knows tasks only through ``vlpet.tasks.Task``.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..metrics.video import selection_score
from ..tasks import Task, get_task
from .interrupts import defer_signals


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def tasks_for(names, num_beams: int = 5, max_length: int = 20) -> dict[str, Task]:
    """``{name: Task}`` with the run's generation settings."""
    return {name: get_task(name, num_beams, max_length) for name in names}


def _task(tasks: dict[str, Task] | None, name: str) -> Task:
    """The run's ``Task`` for ``name``, or the default one (``get_task``) when the run gave none."""
    return tasks[name] if tasks and name in tasks else get_task(name)


class EpochLosses:
    """The training losses of one epoch, per task, on the device; ``carry`` continues the sums and counts of a
    resumed epoch's earlier steps (saved in the step checkpoint), so the epoch's record covers all of its steps."""

    def __init__(self, carry: dict | None = None):
        self.carry = {task: (float(total), int(count)) for task, (total, count) in (carry or {}).items()}
        self.items: dict[str, list[torch.Tensor]] = {}

    def add(self, task: str, loss: torch.Tensor) -> None:
        self.items.setdefault(task, []).append(loss.detach())

    def totals(self) -> dict[str, list]:
        """``{task: [sum, count]}`` so far (one host sync per task)."""
        out = {task: [total, count] for task, (total, count) in self.carry.items()}
        for task, values in self.items.items():
            total, count = out.get(task, [0.0, 0])
            out[task] = [total + sum(torch.stack(values).tolist()), count + len(values)]
        return out

    def record(self) -> dict[str, float]:
        """``{"loss_<task>": mean, ..., "loss": mean over every step}``."""
        totals = self.totals()
        out = {f"loss_{task}": total / count for task, (total, count) in totals.items() if count}
        out["loss"] = sum(t for t, _ in totals.values()) / max(1, sum(c for _, c in totals.values()))
        return out


def train_epoch(model, loader, optimizer, scheduler=None, clip: float = 5.0, epoch: int = 0, step: int = 0,
                show: bool = True, on_step=None, tasks: dict[str, Task] | None = None,
                nan_check_every: int = 1, hooks=None, losses: EpochLosses | None = None,
                micro_batch_size: int = 0) -> dict:
    """Train one epoch (from the loader's ``start`` step, 0 unless resuming mid-epoch); returns
    ``{"loss": mean, "loss_<task>": mean per task, "step": global step after it}``.

    ``tasks`` maps a batch's ``task`` to its ``Task`` (default: ``get_task``). ``on_step(done, step)`` is called
    after every optimizer step with the steps done in this epoch and in all. The
    update (clip, optimizer and scheduler steps, ``on_step``) holds back a Ctrl-C until it is complete.

    Host syncs: the losses stay on the device; they are checked for NaN/inf (and shown on the progress bar) when
    the global step count reaches a multiple of ``nan_check_every``, after that step's backward has been queued and
    before its update, and at the epoch's end. With 1 (the default) every loss is checked before its own update;
    with N > 1 the run stops within N steps of the first non-finite loss, naming that step, and a GPU is not
    stalled every step. Nothing else in the step reads the device.

    ``micro_batch_size`` M > 0: a batch larger than M is run as chunks of at most M examples, each chunk's loss
    weighted by its share of the batch's (``Task.loss_norm``: its examples, or its target tokens for the caption
    loss) and back-propagated at once, then one update: the same loss and gradients as the whole batch (dropout
    masks aside), with the activations of one chunk alive at a time.

    ``hooks`` (a peft tuner's, ``pet.peft_bridge.TunerHooks``; AdaLoRA only): ``hooks.loss(loss)`` adds the tuner's
    regulariser (once per batch), ``hooks.after_step(step)`` runs after the optimizer step, while the gradients are
    still there."""
    model.train()
    done = getattr(loader, "start", 0)
    params = [p for p in model.parameters() if p.requires_grad]
    losses = EpochLosses() if losses is None else losses
    pending: list[tuple[int, str, torch.Tensor]] = []  # (step, task, loss) not yet checked
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=not show, leave=False, dynamic_ncols=True)  # from 1
    for batch in bar:
        task = _task(tasks, batch["task"])
        loss = _loss_and_backward(model, task, batch, micro_batch_size, hooks)
        losses.add(batch["task"], loss)
        pending.append((step, batch["task"], loss))
        if (step + 1) % nan_check_every == 0:
            _check_finite(pending, epoch, bar)
        with defer_signals():
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            if hooks is not None:
                hooks.after_step(step)
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done += 1
            if on_step is not None:  # inside: a Ctrl-C never separates an update from its bookkeeping
                on_step(done, step)
    _check_finite(pending, epoch, bar)
    out = losses.record()
    out["step"] = step
    return out


def _loss_and_backward(model, task: Task, batch: dict, micro_batch_size: int = 0, hooks=None) -> torch.Tensor:
    """Back-propagate the batch's loss (in chunks of ``micro_batch_size`` examples when it is larger; a tuner's
    regulariser, ``hooks.loss``, is added once, with the last chunk); returns the loss, detached."""
    size = batch["input_ids"].shape[0]
    if micro_batch_size <= 0 or size <= micro_batch_size:
        loss = task.loss(model, batch)
        if hooks is not None:
            loss = hooks.loss(loss)
        loss.backward()
        return loss.detach()
    total, loss = task.loss_norm(batch), None
    starts = range(0, size, micro_batch_size)
    for i, start in enumerate(starts):
        chunk = split_batch(batch, start, start + micro_batch_size, size)
        share = task.loss_norm(chunk) / total
        if torch.is_tensor(share) and share.device.type == "cpu":
            share = float(share)
        last = i == len(starts) - 1
        # under DDP the gradients are all-reduced once, with the last chunk's backward
        sync = nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            part = task.loss(model, chunk) * share
            if last and hooks is not None:
                part = hooks.loss(part)
            part.backward()
        loss = part.detach() if loss is None else loss + part.detach()
    return loss


def split_batch(batch: dict, start: int, stop: int, size: int) -> dict:
    """Examples ``start:stop`` of a batch of ``size``: every tensor and list whose first dimension is the batch."""
    return {k: v[start:stop] if (torch.is_tensor(v) and v.dim() and v.shape[0] == size)
            or (isinstance(v, list) and len(v) == size) else v for k, v in batch.items()}


def _check_finite(pending: list[tuple[int, str, torch.Tensor]], epoch: int, bar) -> None:
    """Raise ``NonFiniteLossError`` naming the first non-finite loss of ``pending`` (one host sync), then empty it."""
    if not pending:
        return
    stacked = torch.stack([loss for _, _, loss in pending])
    anywhere = _any_rank(~torch.isfinite(stacked).all())  # agreed on the device: still one host read below
    *values, anywhere = torch.cat([stacked, anywhere.to(stacked.dtype).reshape(1)]).tolist()
    bad = next((f"loss is {value} at step {step} (epoch {epoch + 1}), task {task}"
                for (step, task, _), value in zip(pending, values) if not math.isfinite(value)), None)
    if anywhere and bad is None:
        bad = f"the loss became non-finite in another DDP process by step {pending[-1][0]} (epoch {epoch + 1})"
    if bad is not None:
        raise NonFiniteLossError(bad)
    bar.set_postfix(task=pending[-1][1], loss=f"{values[-1]:.3f}")
    pending.clear()


def _any_rank(flag: torch.Tensor) -> torch.Tensor:
    """Under DDP: whether the boolean ``flag`` holds on any rank, all-reduced on the device (every rank calls this at
    the same steps, so all of them stop together instead of leaving the others waiting in the gradient all-reduce);
    else ``flag``. No host read: the caller reads it together with the losses."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    value = flag.to(torch.int32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value[0].bool()


def evaluate(model, loaders: dict, tokenizer, show: bool = False, timings: dict | None = None,
             tasks: dict[str, Task] | None = None, gather=None) -> dict[str, float]:
    """``{task: score}`` for every loader (one per task); ``tasks`` as in ``train_epoch``; ``timings`` (if given)
    receives seconds per task. ``gather`` (DDP, ``shard.gather``): each rank's loaders hold its share of a split;
    ``gather(predictions)`` returns them all on rank 0, which scores them, and None elsewhere ({} is returned)."""
    scores = {}
    for name, loader in loaders.items():
        start = time.perf_counter()
        task = _task(tasks, name)
        predictions = task.predict(model, loader, tokenizer, show)
        if gather is not None:
            predictions = gather(predictions)
        if predictions is not None:
            scores[name] = task.score(predictions, loader)
        if timings is not None:
            timings[name] = round(time.perf_counter() - start, 2)
    return scores


class BestTracker:
    """Per-task best validation values and epochs as the official trainers track them (``> best or epoch == 0``),
    plus, for the video tasks, the 4-task average ``avg`` that picks the ``BEST`` checkpoint (pipeline spec §4.6).
    ``state()`` goes into the epoch checkpoint so that ``--resume`` keeps tracking."""

    def __init__(self, tasks: str, state: dict | None = None):
        self.tasks = tasks
        self.restore(state)

    def restore(self, state: dict | None) -> None:
        """Continue from a ``state()`` saved in a checkpoint (nothing: start empty)."""
        state = state or {}
        self.best: dict[str, float] = dict(state.get("best", {}))
        self.best_epoch: dict[str, int] = dict(state.get("best_epoch", {}))
        self.last: dict[str, float] = dict(state.get("last", {}))  # the latest epoch's scores

    def update(self, epoch: int, scores: dict[str, float]) -> bool:
        """Record one epoch's validation scores; True when the selection average improved (save ``BEST``)."""
        improved = False
        self.last = dict(scores)
        avg = selection_score(scores, self.tasks)
        values = dict(scores) if avg is None else {**scores, "avg": avg}
        for key, value in values.items():
            if key not in self.best or value > self.best[key] or epoch == 0:
                self.best[key], self.best_epoch[key] = value, epoch
                improved |= key == "avg"
        return improved

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "last": self.last}
