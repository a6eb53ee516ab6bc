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

    def _generated(self, model, loader, tokenizer, show: bool):
        """``(batch, generated texts)`` per batch, in dataset order (batches are not kept)."""
        for batch in self.batches(model, loader, show):
            with torch.no_grad():  # not across the yield: the caller's code keeps its own grad mode
                texts = self.generate(model, batch, tokenizer)
            yield batch, texts

    def score(self, predictions, loader) -> float:
        return score_video(self.name, predictions, loader.dataset.ground_truth())["score"]

    def submission(self, model, loader, tokenizer, show: bool = False):
        """The predictions the submission file holds (``write`` writes them)."""
        raise NotImplementedError

    def write(self, predictions, path: Path) -> Path:
        """Write ``submission``'s predictions (gathered from every rank under DDP) as the benchmark's file."""
        return write_value_submission(self.name, predictions, path)

    def write_submission(self, model, loader, tokenizer, path: Path, show: bool = False) -> Path:
        return self.write(self.submission(model, loader, tokenizer, show), path)

    def submission_name(self, suffix: str = "") -> str:
        """The official file name (``tvqa_test_predictions.json``, ...) with ``suffix`` before the extension."""
        stem, ext = SUBMISSION_FILES[self.name].rsplit(".", 1)
        return f"{stem}{suffix}.{ext}"


class VideoQATask(VideoTask):
    """TVQA, How2QA: the choice label "a<k>" is generated; predictions are {question id: text}."""

    def predict(self, model, loader, tokenizer, show: bool = False) -> dict:
        preds = {}
        for batch, texts in self._generated(model, loader, tokenizer, show):
            preds.update(zip(batch["question_ids"], texts))
        return preds

    def submission(self, model, loader, tokenizer, show: bool = False) -> dict:
        """What the submission file holds: {question id: generated text}."""
        return self.predict(model, loader, tokenizer, show)


class VideoCaptionTask(VideoTask):
    """TVC, YC2C: predictions are the generated captions in dataset order (one per (clip, description))."""

    def predict(self, model, loader, tokenizer, show: bool = False) -> list[str]:
        return [text for _, texts in self._generated(model, loader, tokenizer, show) for text in texts]

    def submission(self, model, loader, tokenizer, show: bool = False) -> list[dict]:
        """What the submission file holds: one record per (clip, description), in dataset order."""
        return [record for batch, texts in self._generated(model, loader, tokenizer, show)
                for record in caption_predictions(batch, texts)]
