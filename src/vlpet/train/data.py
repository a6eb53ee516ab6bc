"""The run's data: ``--tasks`` → the train loader and the val / test loaders (sharded over the ranks), each
split checked before anything heavy is built; the tokenizer and backbone loaded with one clear error."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from ..data.layout import DataError, DataLayout
from ..data.multitask import MultitaskLoader, build_datasets, build_loaders, task_prompts
from ..data.video import VideoLayout, build_video_datasets, build_video_loaders, video_task_prompts
from .checkpoint import capture_rng, restore_rng
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
        whole = loaders_of(built[phase], args.batch_size, False, args.num_workers)
        loaders[phase] = {task: shard_loader(loader, rank, world) for task, loader in whole.items()}
    return loaders


def check_split(ds, task: str, phase: str, feat_dim: int) -> None:
    """A split the run uses must hold examples, and its features must have ``feat_dim`` channels (one example is
    read, with the global RNGs left as they were)."""
    files = ", ".join(str(f) for f in getattr(ds, "sources", [])) or getattr(ds, "split", "?")
    if len(ds) == 0:
        raise DataError(f"the {phase} split of {task} is empty ({files}): it has no examples", None)
    state = capture_rng()
    try:
        dim = np.asarray(ds[0]["vis_feats"]).shape[-1]
        if dim != feat_dim:  # one bad file, or the whole task? (a file unlike the first one read is named)
            for index in (len(ds) // 2, len(ds) - 1):
                ds[index]
    finally:
        restore_rng(state)
    if dim != feat_dim:
        raise DataError(f"the {task} features have {dim} channels but the model expects --feat_dim {feat_dim} "
                        f"({files}): pass --feat_dim {dim} or point --datasets_root at the right features", None)


def load_source(kind: str, name: str, load, hub_id: str | None = None):
    """``load(name)`` for a tokenizer or backbone, with one clear error: a local path that does not exist; a preset
    name given as a tokenizer; a hub id (``hub_id``, default ``name``; None when nothing is fetched from the hub, e.g.
    a preset built ``--from_scratch``) that is not in the local Hugging Face cache while the machine is offline
    (``HF_HUB_OFFLINE``, or the hub cannot be reached): that fails at once, before huggingface_hub's retries."""
    from ..models.presets import PRESETS

    head = name.split("/", 1)[0]
    looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or ("/" in name and Path(head).is_dir())
    exists = Path(name).expanduser().exists()
    if looks_local and not exists:
        raise ValueError(f"the {kind} {name} does not exist (a folder saved with save_pretrained, or a hub id)")
    preset = PRESETS.get(name) if not exists else None
    if kind == "tokenizer" and preset is not None:
        hub = f", or the hub id {preset.hf_id}" if preset.hf_id else ""
        raise ValueError(f"{name} is a backbone preset, not a tokenizer: pass --tokenizer with a folder saved by "
                         f"save_pretrained{hub}")
    hub_id = name if hub_id is None and kind == "tokenizer" else hub_id
    if hub_id is not None and not exists:
        _check_hub_reachable(kind, hub_id)
    try:
        return load(name)
    except OSError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hub = hub_id is not None and hub_id not in PRESETS
        advice = (f"If it is a hub id and this machine is offline, it is not in the local cache; download it first "
                  f"with `hf download {hub_id}` (or pass a local folder)" if hub
                  else "Pass a local folder saved with save_pretrained")
        raise ValueError(f"cannot load the {kind} {name}: {reason.rstrip('.')}. {advice}") from None


def _offline_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _check_hub_reachable(kind: str, hub_id: str) -> None:
    """Fail at once with one line when ``hub_id`` is not in the local Hugging Face cache and the hub cannot be used
    (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``, or no TCP connection to ``HF_ENDPOINT`` within 5 s; skipped
    behind a proxy). Anything else is left to ``from_pretrained``."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return
    try:
        snapshot_download(hub_id, local_files_only=True)
        return  # in the cache
    except LocalEntryNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - not a valid repo id, a broken cache, ...: from_pretrained says what is wrong
        return
    if _offline_env():
        why = "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set"
    else:
        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
            return
        endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
        port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        try:
            socket.create_connection((endpoint.hostname, port), timeout=5).close()
            return
        except OSError:
            why = f"{endpoint.hostname} cannot be reached"
    raise ValueError(f"cannot load the {kind} {hub_id}: it is not in the local Hugging Face cache "
                     f"({constants.HF_HUB_CACHE}) and {why}; download it first with `hf download {hub_id}` where "
                     "there is network (then copy the cache here, or set HF_HOME to it), or pass a local folder")
