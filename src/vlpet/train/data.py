"""The run's data: ``--tasks`` → the train loader and the val / test loaders (sharded over the ranks), each
split checked before anything heavy is built; the tokenizer and backbone loaded with one clear error."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..data.layout import DataError, DataLayout
from ..data.multitask import MultitaskLoader, build_datasets, build_loaders, task_prompts
from ..data.video import VideoLayout, build_video_datasets, build_video_loaders, video_task_prompts
from .shard import shard_loader
from .video import VIDEO_TASKS

IMAGE_TASKS = ("vqa", "gqa", "nlvr", "caption")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def task_list(args) -> list[str]:
    """``--tasks`` as a list (default: the four image-text tasks); unknown names are an error."""
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or list(IMAGE_TASKS)
    unknown = [t for t in tasks if t not in IMAGE_TASKS + VIDEO_TASKS]
    if unknown:
        raise ValueError(f"--tasks {','.join(unknown)}: unknown task(s); choose image-text tasks from "
                         f"{','.join(IMAGE_TASKS)} or video-text tasks from {','.join(VIDEO_TASKS)}")
    return tasks


def build_data(args, tokenizer, rank: int, world: int, tasks: list[str], video: bool, n_frames: int,
               feat_dim: int) -> dict:
    """Train loader (a ``MultitaskLoader``) and val and test loaders on every rank; under DDP (``world`` > 1) the
    val and test loaders hold this rank's share of each split (``shard.shard_loader``; the official trainers
    evaluated on rank 0 while the others waited). ``video`` picks the VALUE video data (``n_frames`` = ``--n_boxes``),
    else the image-text data. Every split the run uses is checked first (``check_split``): not empty, features of
    dimension ``feat_dim``."""
    if video:
        layout = VideoLayout(args.datasets_root)
        prompts = video_task_prompts(args.use_tasks_prompts)
        loaders_of = build_video_loaders

        def datasets(phase: str, limit: int | None) -> dict:
            return build_video_datasets(layout, tokenizer, phase, tasks, prompts, limit, n_frames)
    else:
        layout = DataLayout(args.datasets_root)
        prompts = task_prompts(args.use_tasks_prompts, args.fix_gqa_prompt)
        loaders_of = build_loaders

        def datasets(phase: str, limit: int | None) -> dict:
            return build_datasets(layout, tokenizer, phase, tasks, prompts, limit)
    limit = lambda topk: int(topk) if topk and topk > 1 else None  # noqa: E731  (official --train_topk > 1: first N)
    phases = (["train", "val"] if args.epochs > 0 else []) + ["test"]
    built = {phase: datasets(phase, limit(args.train_topk if phase == "train" else args.valid_topk))
             for phase in ("train", "val", "test")}
    for phase in phases:
        for task, ds in built.get(phase, {}).items():
            check_split(ds, task, phase, feat_dim)
    loaders = {"train": MultitaskLoader(loaders_of(built["train"], args.batch_size, True, args.num_workers),
                                        args.seed)}
    for phase in ("val", "test"):
        loaders[phase] = {task: shard_loader(loader, rank, world)
                          for task, loader in loaders_of(built[phase], args.batch_size, False, args.num_workers).items()}
    return loaders


def check_split(ds, task: str, phase: str, feat_dim: int) -> None:
    """A split the run uses must hold examples, and its features must have ``feat_dim`` channels (one example is
    read, with the global RNGs left as they were)."""
    files = ", ".join(str(f) for f in getattr(ds, "sources", [])) or getattr(ds, "split", "?")
    if len(ds) == 0:
        raise DataError(f"the {phase} split of {task} is empty ({files}): it has no examples", None)
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        dim = np.asarray(ds[0]["vis_feats"]).shape[-1]
    finally:
        random.setstate(state[0]), np.random.set_state(state[1]), torch.set_rng_state(state[2])
    if dim != feat_dim:
        raise DataError(f"the {task} features have {dim} channels but the model expects --feat_dim {feat_dim} "
                        f"({files}): pass --feat_dim {dim} or point --datasets_root at the right features", None)


def load_source(kind: str, name: str, load):
    """``load(name)`` for a tokenizer or backbone, with one clear error: a local path that does not exist, or a hub
    id that is neither a local folder nor in the local Hugging Face cache (offline)."""
    head = name.split("/", 1)[0]
    looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or ("/" in name and Path(head).is_dir())
    if looks_local and not Path(name).expanduser().exists():
        raise ValueError(f"the {kind} {name} does not exist (a folder saved with save_pretrained, or a hub id)")
    try:
        return load(name)
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load the {kind} {name}: {reason}. If it is a hub id and this machine is offline, "
                         f"it is not in the local cache; download it first with `hf download {name}` (or pass a "
                         "local folder)") from None
