"""Multi-task loading of the four image-text tasks, as the official trainer mixes them (pipeline spec §3).

* One DataLoader per task, with the per-task batch sizes of §3.1 (VQA B, GQA int(B*100/60), NLVR2 int(B*20/60),
  caption int(B*50/60)), used for train, val and test alike.
* Training order: a ``DistributedSampler`` with seed 0 (``randperm`` seeded by ``0 + epoch``) whatever the run's
  seed; without a process group it runs as one replica, which is the order the published single-GPU runs saw.
* ``MultitaskLoader``: each epoch lists every task once per batch of its loader, shuffles that list with
  ``random.Random(epoch)`` and consumes it from the end, so every epoch passes over every dataset exactly once in a
  random interleaving of single-task batches. The task order depends on the epoch only (§9 item 13).
* Answer sampling (VQA/GQA) uses numpy's global generator: the main process's (seeded by the run) with 0 workers;
  with workers, torch reseeds numpy in every worker from the loader's base seed, which changes every epoch and
  depends on the run's seed (unlike torch 1.8, where workers repeated one stream; §9 item 14).
* Feature files are opened lazily inside each worker and their handles are cached there (see ``features``).
* Whole batches: each task's ``TaskLoader`` hands a batch's indices to the dataset's ``__getitems__``, which builds
  the batch at once (one tokenisation per run, one feature read per batch; see ``base``). Features leave the
  loader in float16 as stored, in pinned memory on CUDA; ``device.to_device`` copies them without blocking and
  widens them to float32 on the device. Workers are persistent (started once per loader, not once per epoch); the
  first batch of each worker in every later pass reseeds it as torch seeds a fresh worker (``WorkerSeeds``), so the
  answer draws with workers are those of fresh workers per epoch.
* Mid-epoch resume: ``set_epoch(epoch, start=k)`` starts the epoch at its step ``k`` without loading the skipped
  batches (each task's sampler drops the indices those batches held). Every loader has its own ``torch.Generator``,
  reseeded per epoch from the run's seed, so creating loader iterators never draws from the global torch RNG and a
  resumed run continues the same random streams (dropout, answer sampling with 0 workers).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from . import caption, gqa, nlvr, vqa
from .layout import DataLayout

TASKS = ("vqa", "gqa", "nlvr", "caption")
DATASETS = {"vqa": vqa.VQADataset, "gqa": gqa.GQADataset, "nlvr": nlvr.NLVRDataset, "caption": caption.CaptionDataset}
# Splits of the published multitask runs (§1.5); GQA is validated on testdev and has no test phase.
SPLITS = {
    "train": {"vqa": "karpathy_train", "gqa": "train,valid", "nlvr": "train", "caption": "karpathy_train"},
    "val": {"vqa": "karpathy_val", "gqa": "testdev", "nlvr": "valid", "caption": "karpathy_val"},
    "test": {"vqa": "karpathy_test", "nlvr": "test", "caption": "karpathy_test"},
}
SAMPLER_SEED = 0


def task_prompts(use_task_prompts: bool = True, fix_gqa_typo: bool = False) -> dict[str, str]:
    """The per-task input prompts: "vqa: ", "gpa: " (official typo; "gqa: " when fixed), "nlvr: ", "caption: ";
    all empty without ``--use_tasks_prompts``."""
    prompts = {"vqa": vqa.PROMPT, "gqa": gqa.PROMPT_FIXED if fix_gqa_typo else gqa.PROMPT, "nlvr": nlvr.PROMPT,
               "caption": caption.PROMPT}
    return prompts if use_task_prompts else dict.fromkeys(prompts, "")


def task_batch_sizes(batch_size: int) -> dict[str, int]:
    """Per-task batch sizes from the run's ``--batch_size`` B (§3.1)."""
    return {"vqa": batch_size, "gqa": int(batch_size * 100 / 60), "nlvr": int(batch_size * 20 / 60),
            "caption": int(batch_size * 50 / 60)}


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` whose epoch can start after its first ``skip`` indices (mid-epoch resume).

    ``len`` stays the full epoch's, so the loader's ``len`` (and the task interleaving built from it) is unchanged."""

    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)


def train_sampler(dataset) -> DistributedSampler:
    """Shuffling sampler with seed 0, sharded over the process group if one is initialised, else one replica."""
    if dist.is_available() and dist.is_initialized():
        return ResumableSampler(dataset, shuffle=True, seed=SAMPLER_SEED)
    return ResumableSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=SAMPLER_SEED)


class SeededIndices(list):
    """The indices of one batch; ``worker_seed`` (when not None) reseeds the worker that builds it first."""

    def __init__(self, indices, worker_seed: int | None = None):
        super().__init__(indices)
        self.worker_seed = worker_seed


class WorkerSeeds:
    """The batch sampler of a loader with persistent workers: its batches, where in every pass after the first the
    first batch of each worker carries that pass's base seed.

    A fresh iterator (non-persistent workers) draws one base seed from the loader's generator and seeds worker k
    from it; batch j goes to worker j % num_workers. Persistent workers are seeded by torch for the first pass
    only, so for each later pass this draws the base seed the same way, at the same point of the generator's
    stream, and ``ImageTextDataset.__getitems__`` reseeds the worker with it (``base.seed_worker``)."""

    def __init__(self, batches, generator: torch.Generator, num_workers: int):
        self.batches, self.generator, self.num_workers = batches, generator, num_workers
        self.passes = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        seed = None
        if self.passes:
            seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())
        self.passes += 1
        for k, indices in enumerate(self.batches):
            yield SeededIndices(indices, seed if k < self.num_workers else None)


def as_built(batch):
    """The collate function of whole-batch datasets: ``__getitems__`` already returns the batch."""
    return batch


class TaskLoader(DataLoader):
    """DataLoader of one task's dataset, with persistent workers reseeded per pass (``WorkerSeeds``)."""

    def __init__(self, dataset, **kwargs):
        self.seeds = None
        super().__init__(dataset, **kwargs)
        self.task = dataset.task
        if self.num_workers > 0:
            self.seeds = WorkerSeeds(self.batch_sampler, self.generator, self.num_workers)

    @property
    def _index_sampler(self):
        return super()._index_sampler if self.seeds is None else self.seeds


def make_loader(dataset, batch_size: int, train: bool, num_workers: int = 0) -> DataLoader:
    """DataLoader of one task: shuffled by ``train_sampler`` in training, sequential otherwise; never drops.

    A dataset with ``__getitems__`` builds each batch whole (in pinned memory on CUDA when built in this process);
    others (video) are collated by their ``collate``. Workers are persistent."""
    whole = hasattr(dataset, "__getitems__")
    pin = torch.cuda.is_available()
    if whole:
        dataset.pin_memory = pin
    return TaskLoader(
        dataset,
        batch_size=batch_size,
        sampler=train_sampler(dataset) if train else None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=as_built if whole else dataset.collate,
        pin_memory=pin,
        drop_last=False,
        persistent_workers=num_workers > 0,
        generator=torch.Generator(),  # iterator creation draws its worker base seed here, not from the global RNG
    )


def build_datasets(layout: DataLayout, tokenizer, phase: str, tasks=TASKS, prompts: dict[str, str] | None = None,
                   limit: int | None = None) -> dict:
    """The datasets of ``phase`` (train, val or test) for ``tasks``; tasks without that phase are skipped."""
    prompts = task_prompts() if prompts is None else prompts
    return {task: DATASETS[task](layout, SPLITS[phase][task], tokenizer, prompt=prompts[task], limit=limit)
            for task in tasks if task in SPLITS[phase]}


def build_loaders(datasets: dict, batch_size: int, train: bool, num_workers: int = 0) -> dict[str, DataLoader]:
    """One loader per task with the per-task batch sizes of ``batch_size`` (at least 1 each)."""
    sizes = task_batch_sizes(batch_size)
    return {task: make_loader(ds, max(1, sizes[task]), train, num_workers) for task, ds in datasets.items()}


def epoch_task_order(task_lengths: dict[str, int], epoch: int) -> list[str]:
    """Task of each step of ``epoch``: [task]*len per task (in the given order), shuffled with Random(epoch),
    consumed from the end as the official ``pop()`` does."""
    tasks = [task for task, length in task_lengths.items() for _ in range(length)]
    random.Random(epoch).shuffle(tasks)
    return tasks[::-1]


class MultitaskLoader:
    """Iterates single-task batches of several task loaders in the official shuffled interleaving.

    Call ``set_epoch(epoch)`` before every epoch (it also sets each sampler's epoch); ``steps_per_epoch`` is the
    number of batches in an epoch, ``len`` the number still to come in this one (they differ after
    ``set_epoch(epoch, start)``). ``seed`` (the run's) seeds the loaders' own generators, per epoch and task.
    """

    def __init__(self, loaders: dict[str, DataLoader], seed: int = 0):
        self.loaders = loaders
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Fix the data order and the task interleaving of ``epoch``; begin it at its step ``start``."""
        self.epoch = epoch
        for loader in self.loaders.values():
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
        self.order = epoch_task_order({task: len(loader) for task, loader in self.loaders.items()}, epoch)
        if not 0 <= start <= len(self.order):
            raise ValueError(f"epoch {epoch} has {len(self.order)} steps; cannot start it at step {start}")
        self.start = start
        done = Counter(self.order[:start])
        for k, (task, loader) in enumerate(self.loaders.items()):
            if isinstance(loader.sampler, ResumableSampler):
                loader.sampler.skip = done[task] * loader.batch_size
            elif done[task]:
                raise ValueError(f"the {task} loader cannot skip batches (its sampler is not a ResumableSampler)")
            if loader.generator is not None:
                loader.generator.manual_seed((self.seed * 1_000_003 + epoch * 1009 + k) % 2**63)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.order)

    def __len__(self) -> int:
        return len(self.order) - self.start

    def __iter__(self) -> Iterator[dict]:
        iterators = {task: iter(loader) for task, loader in self.loaders.items()}
        for task in self.order[self.start:]:
            yield next(iterators[task])
