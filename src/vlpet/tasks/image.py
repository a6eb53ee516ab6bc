"""The image-text tasks as the official multitask trainer runs them (pipeline spec §2.1-§2.4, §5.1-§5.5).

* VQA: loss = per-sample mean weighted by the sampled answer's soft score; greedy decoding (max length 20); the
  paper's VQA scorer against the 10 raw answers of the VQA v2 annotation files.
* GQA: per-sample mean loss; greedy decoding; exact match.
* NLVR2: per-sample mean loss on "true"/"false"; prediction compares the "true" and "false" logits at decoder
  position 1 after ``[decoder_start, bos]`` (BART) / position 0 after ``[pad]`` (T5); accuracy.
* COCO caption: one token mean over the batch (§9 item 4); beam ``--num_beams`` (5 in the scripts), max length
  ``--gen_max_length`` (20, §9 item 20); CIDEr-D x100.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..losses import IGNORE, packed_sample_mean_loss, packed_token_mean_loss
from .base import Task

GREEDY = dict(num_beams=1, max_length=20)  # VQA/GQA: beam 1 forced, the config's max length 20


def vqa_raw_answers(dataset) -> dict:
    """question id -> the 10 raw answers, from the dataset's VQA v2 annotation files (both COCO subsets)."""
    answers = {}
    for subset in ("train2014", "val2014"):
        path = Path(dataset.layout.vqa_annotations(subset))
        if path.exists():
            for ann in json.loads(path.read_text())["annotations"]:
                answers[ann["question_id"]] = [a["answer"] for a in ann["answers"]]
    return answers


class QuestionTask(Task):
    """Short-answer generation keyed by question id (VQA, GQA)."""

    def predict(self, model, loader, tokenizer, show: bool = False) -> dict:
        preds = {}
        with torch.no_grad():
            for batch in self.batches(model, loader, show):
                preds.update(zip(batch["question_ids"], self.generate(model, batch, tokenizer, **GREEDY)))
        return preds


class VQATask(QuestionTask):
    def loss(self, model, batch: dict) -> torch.Tensor:
        return packed_sample_mean_loss(*self.target_logits(model, batch), batch.get("scores"))

    def score(self, predictions: dict, loader, references: dict | None = None) -> float:
        from ..metrics.vqa import score_vqa

        refs = references if references is not None else vqa_raw_answers(loader.dataset)
        return score_vqa(predictions, refs)["score"]


class GQATask(QuestionTask):
    def score(self, predictions: dict, loader) -> float:
        from ..metrics.gqa import score_gqa

        return score_gqa(predictions, {d["question_id"]: d["label"] for d in loader.dataset.data})["score"]


def nlvr_decoder_start(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The official NLVR2 decoder input: BART ``[</s>, <s>]`` (answer read at position 1), T5 ``[<pad>]`` (position 0)."""
    ids = [model.config.decoder_start_token_id]
    if model.kind == "bart":
        ids.append(model.config.bos_token_id)
    return torch.tensor(ids, device=input_ids.device).expand(len(input_ids), len(ids))


class NLVRTask(Task):
    def predict(self, model, loader, tokenizer, show: bool = False) -> dict:
        true_id, false_id = tokenizer.convert_tokens_to_ids("true"), tokenizer.convert_tokens_to_ids("false")
        preds = {}
        with torch.no_grad():
            for batch in self.batches(model, loader, show):
                start = nlvr_decoder_start(model, batch["input_ids"])
                logits = model(batch["input_ids"], batch["vis_feats"], batch["boxes"], decoder_input_ids=start,
                               task=self.name).logits[:, -1]
                preds.update(zip(batch["identifiers"], (logits[:, true_id] > logits[:, false_id]).long().tolist()))
        return preds

    def score(self, predictions: dict, loader) -> float:
        from ..metrics.nlvr import score_nlvr

        return score_nlvr(predictions, {d["identifier"]: int(d["label"]) for d in loader.dataset.data})["score"]


class CaptionTask(Task):
    def loss(self, model, batch: dict) -> torch.Tensor:
        return packed_token_mean_loss(*self.target_logits(model, batch))

    def loss_norm(self, batch: dict):
        """The caption loss is one mean over the batch's target tokens: a micro-batch weighs by its token count
        (read from the host copy of the labels when there is one)."""
        return batch.get("target_ids_host", batch["target_ids"]).ne(IGNORE).sum()

    def predict(self, model, loader, tokenizer, show: bool = False) -> dict:
        preds = {}
        with torch.no_grad():
            for batch in self.batches(model, loader, show):
                preds.update(zip(batch["img_ids"], self.generate(model, batch, tokenizer)))
        return preds

    def score(self, predictions: dict, loader) -> float:
        from ..metrics.caption import score_caption

        return score_caption(predictions, {d["img_id"]: d["targets"] for d in loader.dataset.data})["score"]
