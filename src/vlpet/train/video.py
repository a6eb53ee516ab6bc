"""The video-text side of the trainer (pipeline spec §1.5, §4.6-§4.8): TVQA, How2QA, TVC, YC2C.

* Data: ``vlpet.data.video`` on the VALUE layout under ``<datasets root>/video`` (built by ``main.build_data``);
  every task uses ``--batch_size``.
* Validation, generation and submission files: ``vlpet.tasks.video``.
* Model selection: the unweighted mean of the four validation scores when ``--tasks`` contains
  "tvqa,how2qa,tvc,yc2c" (``loop.BestTracker``); a new best (or epoch 0) saves the ``BEST`` checkpoint (the official
  ``best_avg_valid_model.pth``), whose weights write the test submission files again with the official
  ``_best_avg_valid_model`` suffix.
"""

from __future__ import annotations

from ..data.video import TASKS

VIDEO_TASKS = TASKS
BEST = "BEST"
BEST_SUFFIX = "_best_avg_valid_model"


def is_video(tasks: list[str]) -> bool:
    """Whether ``tasks`` are video tasks (all of them); mixing image and video tasks is an error."""
    video = [t for t in tasks if t in VIDEO_TASKS]
    if video and len(video) != len(tasks):
        raise ValueError(f"--tasks mixes video ({','.join(video)}) and image-text tasks; the official trainers "
                         "(multitask.py, multitask_video.py) run one family at a time")
    return bool(video)
