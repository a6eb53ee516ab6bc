"""A short multi-task train / evaluate loop following the official trainer (pipeline spec §4-§5).

* ``train_epoch``: one pass over a ``MultitaskLoader``; per-task loss as officially computed (VQA: per-sample mean
  weighted by the sampled answer's soft score; caption: one token mean over the batch; GQA/NLVR2: per-sample mean),
  backward, ``clip_grad_norm_``, optimizer step, scheduler step, grads set to None. A NaN/inf loss stops the run
  with an error naming the step and the task.
* ``evaluate``: per-task scores on the paper's scale with ``vlpet.metrics``. VQA/GQA greedy decode; NLVR2 compares
  the "true" and "false" logits at decoder position 1 after ``[decoder_start, bos]`` (the official NLVR2 head);
  caption beam 5, max_length 20.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..losses import sample_mean_loss, token_mean_loss
from ..metrics.video import selection_score
from .checkpoint import defer_sigint

GENERATION = {"vqa": dict(num_beams=1), "gqa": dict(num_beams=1), "caption": dict(num_beams=5, max_length=20)}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def task_loss(model, batch: dict) -> torch.Tensor:
    """The official loss of one single-task batch."""
    logits = model(batch["input_ids"], batch["vis_feats"], batch["boxes"], labels=batch["target_ids"],
                   task=batch["task"]).logits
    if batch["task"] == "caption":
        return token_mean_loss(logits, batch["target_ids"])
    weights = batch.get("scores") if batch["task"] == "vqa" else None
    return sample_mean_loss(logits, batch["target_ids"], weights)


def train_epoch(model, loader, optimizer, scheduler=None, clip: float = 5.0, epoch: int = 0, step: int = 0,
                show: bool = True, on_step=None) -> dict:
    """Train one epoch (from the loader's ``start`` step, 0 unless resuming mid-epoch); returns
    ``{"loss": mean, "loss_<task>": mean per task, "step": global step after it}``.

    ``on_step(done, step)`` is called after every optimizer step with the steps done in this epoch and in all. The
    update (clip, optimizer and scheduler steps, ``on_step``) holds back a Ctrl-C until it is complete."""
    model.train()
    done = getattr(loader, "start", 0)
    params = [p for p in model.parameters() if p.requires_grad]
    sums: dict[str, list[float]] = {}
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not show, leave=False, dynamic_ncols=True)
    for batch in bar:
        loss = task_loss(model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss is {loss.item()} at step {step} (epoch {epoch}), task {batch['task']}")
        loss.backward()
        with defer_sigint():
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done += 1
            if on_step is not None:  # inside: a Ctrl-C never separates an update from its bookkeeping
                on_step(done, step)
        sums.setdefault(batch["task"], []).append(loss.item())
        bar.set_postfix(task=batch["task"], loss=f"{loss.item():.3f}")
    out = {f"loss_{task}": sum(v) / len(v) for task, v in sums.items()}
    out["loss"] = sum(sum(v) for v in sums.values()) / max(1, sum(len(v) for v in sums.values()))
    out["step"] = step
    return out


def _decode(tokenizer, ids: torch.Tensor) -> list[str]:
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def vqa_raw_answers(dataset) -> dict:
    """question id -> the 10 raw answers, from the dataset's VQA v2 annotation files (both COCO subsets)."""
    answers = {}
    for subset in ("train2014", "val2014"):
        path = Path(dataset.layout.vqa_annotations(subset))
        if path.exists():
            for ann in json.loads(path.read_text())["annotations"]:
                answers[ann["question_id"]] = [a["answer"] for a in ann["answers"]]
    return answers


def nlvr_decoder_start(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The official NLVR2 decoder input: BART ``[</s>, <s>]`` (answer read at position 1), T5 ``[<pad>]`` (position 0)."""
    ids = [model.config.decoder_start_token_id]
    if model.kind == "bart":
        ids.append(model.config.bos_token_id)
    return torch.tensor(ids, device=input_ids.device).expand(len(input_ids), len(ids))


@torch.no_grad()
def predict(model, loader, tokenizer, show: bool = False) -> dict:
    """Predictions of one task's loader: id -> answer text (VQA, GQA), identifier -> 0/1 (NLVR2),
    image id -> caption."""
    model.eval()
    task = loader.dataset.task
    true_id, false_id = tokenizer.convert_tokens_to_ids("true"), tokenizer.convert_tokens_to_ids("false")
    preds = {}
    for batch in tqdm(loader, desc=f"eval {task}", disable=not show, leave=False, dynamic_ncols=True):
        inputs = (batch["input_ids"], batch["vis_feats"], batch["boxes"])
        if task == "nlvr":
            logits = model(*inputs, decoder_input_ids=nlvr_decoder_start(model, batch["input_ids"]), task=task)
            logits = logits.logits[:, -1]
            labels = (logits[:, true_id] > logits[:, false_id]).long().tolist()
            preds.update(zip(batch["identifiers"], labels))
            continue
        texts = _decode(tokenizer, model.generate(*inputs, task=task, **GENERATION[task]))
        keys = batch["img_ids"] if task == "caption" else batch["question_ids"]
        preds.update(zip(keys, texts))
    return preds


def score(task: str, preds: dict, loader, references: dict | None = None) -> float:
    """The headline score of ``preds`` on the paper's scale (VQA/GQA/NLVR2 accuracy %, CIDEr x100)."""
    from ..metrics.caption import score_caption
    from ..metrics.gqa import score_gqa
    from ..metrics.nlvr import score_nlvr
    from ..metrics.vqa import score_vqa

    data = loader.dataset.data
    if task == "vqa":
        return score_vqa(preds, references if references is not None else vqa_raw_answers(loader.dataset))["score"]
    if task == "gqa":
        return score_gqa(preds, {d["question_id"]: d["label"] for d in data})["score"]
    if task == "nlvr":
        return score_nlvr(preds, {d["identifier"]: int(d["label"]) for d in data})["score"]
    return score_caption(preds, {d["img_id"]: d["targets"] for d in data})["score"]


def evaluate(model, loaders: dict, tokenizer, show: bool = False, timings: dict | None = None) -> dict[str, float]:
    """``{task: score}`` for every loader (one per task); ``timings`` (if given) receives seconds per task."""
    scores = {}
    for task, loader in loaders.items():
        start = time.perf_counter()
        scores[task] = score(task, predict(model, loader, tokenizer, show), loader)
        if timings is not None:
            timings[task] = round(time.perf_counter() - start, 2)
    return scores


class BestTracker:
    """Per-task best validation values and epochs as the official trainers track them (``> best or epoch == 0``),
    plus, for the video tasks, the 4-task average ``avg`` that picks the ``BEST`` checkpoint (pipeline spec §4.6).
    ``state()`` goes into the epoch checkpoint so that ``--resume`` keeps tracking."""

    def __init__(self, tasks: str, state: dict | None = None):
        self.tasks = tasks
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
