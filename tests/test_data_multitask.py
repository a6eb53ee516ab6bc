"""Multi-task mixing (pipeline spec §3): per-task batch sizes, seed-0 samplers, the Random(epoch) interleaving."""

import random
from collections import Counter

import pytest
import torch

from vlpet.data.layout import DataLayout
from vlpet.data.multitask import (MultitaskLoader, build_datasets, build_loaders, epoch_task_order, task_batch_sizes,
                                  task_prompts)
from vlpet.synth.image import synth_words, write_synthetic
from vlpet.data.tokenizer import build_tokenizer

ID_KEY = {"vqa": "question_ids", "gqa": "question_ids", "nlvr": "uids", "caption": "sents"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_synthetic(root, n_train=6, n_val=2, n_test=2, feat_dim=8)
    return build_datasets(DataLayout(root), build_tokenizer("bart", synth_words()), "train")


def test_batch_sizes_of_the_published_runs():
    assert task_batch_sizes(500) == {"vqa": 500, "gqa": 833, "nlvr": 166, "caption": 416}
    assert task_batch_sizes(300) == {"vqa": 300, "gqa": 500, "nlvr": 100, "caption": 250}


def test_prompts():
    assert task_prompts() == {"vqa": "vqa: ", "gqa": "gpa: ", "nlvr": "nlvr: ", "caption": "caption: "}
    assert task_prompts(fix_gqa_typo=True)["gqa"] == "gqa: "
    assert set(task_prompts(use_task_prompts=False).values()) == {""}


def official_order(lengths, epoch):
    """The official MultitaskLoader: list, shuffle with Random(epoch), then pop() from the end."""
    tasks = [task for task, n in lengths.items() for _ in range(n)]
    random.Random(epoch).shuffle(tasks)
    return [tasks.pop() for _ in range(len(tasks))]


def test_epoch_order_is_the_official_one_and_ignores_the_global_seed():
    lengths = {"vqa": 5, "gqa": 4, "nlvr": 2, "caption": 3}
    random.seed(123)
    order = epoch_task_order(lengths, 3)
    random.seed(456)
    assert order == epoch_task_order(lengths, 3) == official_order(lengths, 3)
    assert Counter(order) == lengths
    assert epoch_task_order(lengths, 4) != order


def test_an_epoch_passes_over_every_dataset_once(datasets):
    loader = MultitaskLoader(build_loaders(datasets, 4, train=True))
    sizes = task_batch_sizes(4)
    assert len(loader) == sum(-(-len(ds) // sizes[task]) for task, ds in datasets.items())
    seen, tasks = Counter(), []
    for batch in loader:
        tasks.append(batch["task"])
        seen.update((batch["task"], str(key)) for key in batch[ID_KEY[batch["task"]]])
    assert tasks == loader.order
    assert sum(seen.values()) == sum(len(ds) for ds in datasets.values())
    for task, ds in datasets.items():
        assert sum(n for (t, _), n in seen.items() if t == task) == len(ds)


def first_vqa_ids(loader):
    return next(b for b in loader if b["task"] == "vqa")["question_ids"]


def test_data_order_is_the_seed0_sampler_of_the_epoch(datasets):
    loader = MultitaskLoader(build_loaders(datasets, 4, train=True))
    vqa = datasets["vqa"]
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        torch.manual_seed(epoch + 99)  # the run's seed must not matter
        perm = torch.randperm(len(vqa), generator=torch.Generator().manual_seed(epoch)).tolist()
        assert first_vqa_ids(loader) == [vqa.data[i]["question_id"] for i in perm[:4]]
    loader.set_epoch(0)
    assert loader.loaders["vqa"].sampler.epoch == 0


def test_val_loaders_are_sequential_and_skip_missing_phases(tmp_path):
    write_synthetic(tmp_path, n_train=2, n_val=2, n_test=2, feat_dim=8)
    tok = build_tokenizer("t5", synth_words())
    test = build_datasets(DataLayout(tmp_path), tok, "test")
    assert set(test) == {"vqa", "nlvr", "caption"}  # GQA has no test phase (validated on testdev)
    loaders = build_loaders(test, 4, train=False)
    ids = [i for batch in loaders["vqa"] for i in batch["question_ids"]]
    assert ids == [d["question_id"] for d in test["vqa"].data]
