"""The video-text side of the trainer (pipeline spec §1.5, §4.6-§4.8, §5.1, §5.6): TVQA, How2QA, TVC, YC2C.

* Data: ``vlpet.data.video`` on the VALUE layout under ``<datasets root>/video``; every task uses ``--batch_size``.
* Validation each epoch: TVQA/How2QA accuracy % (exact match of the generated "a<k>"), TVC/YC2C CIDEr x100 with one
  reference per (clip, description) pair; generation as the official video trainer runs it: beam ``--num_beams``
  (5 in the scripts; the official QA ``generate`` inherits it from the config) and ``--gen_max_length`` (20).
* Model selection: the unweighted mean of the four validation scores when ``--tasks`` contains
  "tvqa,how2qa,tvc,yc2c"; a new best (or epoch 0) saves the ``BEST`` checkpoint (the official
  ``best_avg_valid_model.pth``).
* Test: the splits are unlabelled, so there is no local test score; the LAST weights write the VALUE submission
  files (``tvqa_test_predictions.json``, ...), then the BEST weights write them again with the official
  ``_best_avg_valid_model`` suffix.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.video import CAPTION_TASKS, QA_TASKS, TASKS, VideoLayout, build_video_datasets, build_video_loaders, \
    parse_tasks, video_task_prompts
from ..metrics.video import SUBMISSION_FILES, caption_predictions, score_video, write_value_submission

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


def build_video_data(args, tokenizer, main: bool, n_frames: int) -> dict:
    """Train loader (a ``MultitaskLoader``) on every rank; val and test loaders on the main process only."""
    from ..data.multitask import MultitaskLoader

    tasks = parse_tasks(args.tasks)
    layout = VideoLayout(args.datasets_root)
    prompts = video_task_prompts(args.use_tasks_prompts)
    limit = lambda topk: int(topk) if topk and topk > 1 else None  # noqa: E731  (official topk > 1: first N)
    train = build_video_datasets(layout, tokenizer, "train", tasks, prompts, limit(args.train_topk), n_frames)
    loaders = {"train": MultitaskLoader(build_video_loaders(train, args.batch_size, True, args.num_workers),
                                        args.seed)}
    if main:
        for phase in ("val", "test"):
            sets = build_video_datasets(layout, tokenizer, phase, tasks, prompts, limit(args.valid_topk), n_frames)
            loaders[phase] = build_video_loaders(sets, args.batch_size, False, args.num_workers)
    return loaders


def _decode(tokenizer, ids: torch.Tensor) -> list[str]:
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


@torch.no_grad()
def predict_video(model, loader, tokenizer, num_beams: int = 5, max_length: int = 20, show: bool = False):
    """Generate for one task's loader, in dataset order: ``(question_ids, texts, records)``, where ``records`` are the
    caption submission records (empty for QA)."""
    model.eval()
    task = loader.dataset.task
    ids, texts, records = [], [], []
    for batch in tqdm(loader, desc=f"eval {task}", disable=not show, leave=False, dynamic_ncols=True):
        out = model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"], task=task, num_beams=num_beams,
                             max_length=max_length)
        generated = _decode(tokenizer, out)
        ids += list(batch["question_ids"])
        texts += generated
        if task in CAPTION_TASKS:
            records += caption_predictions(batch, generated)
    return ids, texts, records


def evaluate_video(model, loaders: dict, tokenizer, num_beams: int = 5, max_length: int = 20,
                   show: bool = False) -> dict[str, float]:
    """``{task: validation score}`` on the paper's scale (accuracy %, CIDEr x100)."""
    scores = {}
    for task, loader in loaders.items():
        ids, texts, _ = predict_video(model, loader, tokenizer, num_beams, max_length, show)
        preds = dict(zip(ids, texts)) if task in QA_TASKS else texts
        scores[task] = score_video(task, preds, loader.dataset.ground_truth())["score"]
    return scores


def submission_path(run_dir: Path, task: str, suffix: str = "") -> Path:
    """The official file name of a task's test predictions, with ``suffix`` before the extension."""
    stem, ext = SUBMISSION_FILES[task].rsplit(".", 1)
    return Path(run_dir) / f"{stem}{suffix}.{ext}"


def write_test_predictions(model, loaders: dict, tokenizer, run_dir: Path, suffix: str = "", num_beams: int = 5,
                           max_length: int = 20, show: bool = False) -> dict[str, str]:
    """Decode every (unlabelled) test loader and write its VALUE submission file; returns ``{task: path}``."""
    written = {}
    for task, loader in loaders.items():
        ids, texts, records = predict_video(model, loader, tokenizer, num_beams, max_length, show)
        predictions = dict(zip(ids, texts)) if task in QA_TASKS else records
        written[task] = str(write_value_submission(task, predictions, submission_path(run_dir, task, suffix)))
    return written
