"""The Task registry: every image and video task is there, with the official test-split kind and file names."""

import pytest
import torch

from vlpet.data.multitask import TASKS as IMAGE_TASKS
from vlpet.data.video import TASKS as VIDEO_TASKS
from vlpet.losses import sample_mean_loss, token_mean_loss
from vlpet.tasks import TASKS, get_task


def test_registry_covers_every_dataset():
    assert set(TASKS) == set(IMAGE_TASKS) | set(VIDEO_TASKS)
    assert all(get_task(t).labelled_test for t in IMAGE_TASKS)
    assert not any(get_task(t).labelled_test for t in VIDEO_TASKS)
    assert get_task("tvqa").submission_name() == "tvqa_test_predictions.json"
    assert get_task("how2qa").submission_name("_best_avg_valid_model") == \
        "how2qa_test_public_predictions_best_avg_valid_model.json"
    assert get_task("yc2c").submission_name() == "yc2c_test_predictions.jsonl"
    with pytest.raises(NotImplementedError):
        get_task("vqa").submission_name()


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="ocr"):
        get_task("ocr")


class _Logits:
    """A stand-in model returning fixed logits (the tasks' losses only read ``.logits``), only the rows of
    ``target_index`` when it is given, as ``VLModel.forward`` does."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, *args, target_index=None, **kwargs):
        rows = self.logits if target_index is None else self.logits.flatten(0, 1)[target_index]
        return type("Out", (), {"logits": rows})()


@pytest.mark.parametrize("task", ["vqa", "gqa", "nlvr", "caption", "tvqa", "tvc"])
def test_each_task_uses_its_official_loss(task):
    """Caption: one token mean over the batch; VQA: per-sample mean weighted by the answer's score; the rest: the
    per-sample mean (pipeline spec §9 item 4)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 11, generator=g)
    targets = torch.tensor([[5, 6, 2, -100], [7, 2, -100, -100], [8, 9, 10, 2]])
    batch = {"task": task, "input_ids": None, "vis_feats": None, "boxes": None, "target_ids": targets,
             "scores": torch.tensor([1.0, 0.3, 0.0])}
    loss = get_task(task).loss(_Logits(logits), batch)
    if task == "caption":
        expected = token_mean_loss(logits, targets)
    elif task == "vqa":
        expected = sample_mean_loss(logits, targets, batch["scores"])
    else:
        expected = sample_mean_loss(logits, targets)
    torch.testing.assert_close(loss, expected)
    assert task != "caption" or not torch.allclose(loss, sample_mean_loss(logits, targets))
