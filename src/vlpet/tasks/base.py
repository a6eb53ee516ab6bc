"""The ``Task`` interface and the pieces its implementations share."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..losses import packed_sample_mean_loss, target_index


class Task:
    """One dataset as the loop sees it.

    ``name`` is the batch's ``task``; ``num_beams`` / ``max_length`` are the run's generation settings (a task may
    fix its own, as VQA/GQA force greedy decoding). ``labelled_test`` says whether the test split has labels (then it
    is scored) or not (then ``write_submission`` writes the file to send to the benchmark's server)."""

    labelled_test = True

    def __init__(self, name: str, num_beams: int = 5, max_length: int = 20):
        self.name = name
        self.num_beams = num_beams
        self.max_length = max_length

    def loss(self, model, batch: dict) -> torch.Tensor:
        """The official training loss of one batch: per-sample token mean, then batch mean (§9 item 4)."""
        return packed_sample_mean_loss(*self.target_logits(model, batch))

    def loss_norm(self, batch: dict):
        """What the loss is a mean over (here the examples): a micro-batch's share of the batch's loss is its
        ``loss_norm`` over the batch's (``train_epoch --micro_batch_size``)."""
        return batch["input_ids"].shape[0]

    def predict(self, model, loader, tokenizer, show: bool = False):
        """Predictions of one loader, in the form ``score`` takes."""
        raise NotImplementedError

    def score(self, predictions, loader) -> float:
        """The headline score of ``predictions`` on the paper's scale (accuracy %, CIDEr x100)."""
        raise NotImplementedError

    def write_submission(self, model, loader, tokenizer, path: Path, show: bool = False) -> Path:
        """Predict an unlabelled split and write the benchmark's submission file; returns its path."""
        raise NotImplementedError(f"{self.name} has a labelled test split: score it instead")

    def submission_name(self, suffix: str = "") -> str:
        raise NotImplementedError(f"{self.name} has no submission file")

    # Shared helpers.
    @staticmethod
    def target_logits(model, batch: dict):
        """(logits at the target positions (N, vocab), the labels (B, T), their flat indices (N,)): training runs
        the LM head only where a label carries loss. The indices come from the host copy of the labels
        (``target_ids_host``, kept by ``DeviceLoader``) when there is one, so that no device is read."""
        labels = batch["target_ids"]
        index = target_index(batch.get("target_ids_host", labels), labels.device)
        rows = model(batch["input_ids"], batch["vis_feats"], batch["boxes"], labels=labels, task=batch["task"],
                     target_index=index).logits
        return rows, labels, index

    def generate(self, model, batch: dict, tokenizer, **settings) -> list[str]:
        """Decoded generations of one batch (``skip_special_tokens``, stripped), with the task's settings."""
        kwargs = {"num_beams": self.num_beams, "max_length": self.max_length, **settings}
        ids = model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"], task=self.name, **kwargs)
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def batches(self, model, loader, show: bool):
        """The loader's batches in eval mode, with a progress bar when ``show``."""
        model.eval()
        return tqdm(loader, desc=f"eval {self.name}", disable=not show, leave=False, dynamic_ncols=True)
