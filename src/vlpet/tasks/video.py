"""The video-text tasks as the official multitask video trainer runs them (pipeline spec §2.5-§2.6, §5.1, §5.6).

Every loss is the per-sample mean; generation uses beam ``--num_beams`` (5 in the scripts: the official QA
``generate`` inherited it from the config) and ``--gen_max_length`` (20). Validation: TVQA/How2QA accuracy % (exact
match of the generated "a<k>"), TVC/YC2C CIDEr x100 with one reference per (clip, description). The test splits are
unlabelled: ``write_submission`` writes the VALUE file the official trainer dumps.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..metrics.video import SUBMISSION_FILES, caption_predictions, score_video, write_value_submission
from .base import Task


class VideoTask(Task):
    labelled_test = False

    def _generate_all(self, model, loader, tokenizer, show: bool):
        """``(ids, texts, batches)`` over the loader, in dataset order."""
        ids, texts, batches = [], [], []
        with torch.no_grad():
            for batch in self.batches(model, loader, show):
                generated = self.generate(model, batch, tokenizer)
                ids += list(batch["question_ids"])
                texts += generated
                batches.append((batch, generated))
        return ids, texts, batches

    def score(self, predictions, loader) -> float:
        return score_video(self.name, predictions, loader.dataset.ground_truth())["score"]

    def submission_name(self, suffix: str = "") -> str:
        """The official file name (``tvqa_test_predictions.json``, ...) with ``suffix`` before the extension."""
        stem, ext = SUBMISSION_FILES[self.name].rsplit(".", 1)
        return f"{stem}{suffix}.{ext}"


class VideoQATask(VideoTask):
    """TVQA, How2QA: the choice label "a<k>" is generated; predictions are {question id: text}."""

    def predict(self, model, loader, tokenizer, show: bool = False) -> dict:
        ids, texts, _ = self._generate_all(model, loader, tokenizer, show)
        return dict(zip(ids, texts))

    def write_submission(self, model, loader, tokenizer, path: Path, show: bool = False) -> Path:
        return write_value_submission(self.name, self.predict(model, loader, tokenizer, show), path)


class VideoCaptionTask(VideoTask):
    """TVC, YC2C: predictions are the generated captions in dataset order (one per (clip, description))."""

    def predict(self, model, loader, tokenizer, show: bool = False) -> list[str]:
        return self._generate_all(model, loader, tokenizer, show)[1]

    def write_submission(self, model, loader, tokenizer, path: Path, show: bool = False) -> Path:
        _, _, batches = self._generate_all(model, loader, tokenizer, show)
        records = [record for batch, generated in batches for record in caption_predictions(batch, generated)]
        return write_value_submission(self.name, records, path)
