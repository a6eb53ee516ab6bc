"""Tasks: what the train loop and the evaluation know about a dataset, behind one interface (``Task``).

A task computes its official training loss on one of its batches, predicts a loader (generation settings of the
official trainers, pipeline spec §5.1), scores predictions on the paper's scale (accuracy %, CIDEr x100) and, for an
unlabelled test split, writes the official submission file. The loop and the trainer look tasks up by name
(``get_task``) and never branch on a task's name.

Adding a task: a ``Task`` subclass (here or in a new file) and one line in ``TASKS``.
"""

from __future__ import annotations

from .base import Task
from .image import CaptionTask, GQATask, NLVRTask, VQATask
from .video import VideoCaptionTask, VideoQATask

TASKS: dict[str, type[Task]] = {
    "vqa": VQATask, "gqa": GQATask, "nlvr": NLVRTask, "caption": CaptionTask,
    "tvqa": VideoQATask, "how2qa": VideoQATask, "tvc": VideoCaptionTask, "yc2c": VideoCaptionTask,
}


def get_task(name: str, num_beams: int = 5, max_length: int = 20) -> Task:
    """The task ``name`` with the run's generation settings (``--num_beams``, ``--gen_max_length``; the official
    trainers use them for captions and video QA, VQA/GQA force greedy decoding)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name](name, num_beams=num_beams, max_length=max_length)


__all__ = ["TASKS", "Task", "get_task"]
