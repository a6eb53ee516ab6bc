"""Image-text data: the on-disk layout, per-task datasets and collate, multi-task mixing, tokenizers, synthetic data.

Batch interface (one dict per single-task batch; see each dataset's docstring for its metadata lists):
``task`` (str), ``input_ids`` (B, L) long padded with ``pad_token_id``, ``target_ids`` (B, T) long with -100 at
padding (labelled splits only), ``vis_feats`` (B, 49, F) or (B, 2, 49, F) for NLVR2 (raw 7x7 grids; the model
pools them) in the stored precision, float16 for the official features (float32 if stored so), ``boxes`` float32
zeros (B, 49, 4) or (B, 2, 49, 4), ``scores`` (B,) float for VQA and ``labels`` (B,) long for NLVR2.
``to_device(batch, device)`` moves a batch to the model's device and widens float16 ``vis_feats`` to float32 there,
the model's input. The datasets build whole batches (``dataset.batch(indices)``; ``dataset[i]`` is example i's).
"""

from .caption import CaptionDataset
from .device import to_device
from .gqa import GQADataset
from .layout import DataError, DataLayout, resolve_root
from .multitask import MultitaskLoader, build_datasets, build_loaders, task_batch_sizes, task_prompts
from .nlvr import NLVRDataset
from .tokenizer import build_tokenizer, load_tokenizer
from .vqa import VQADataset

__all__ = [
    "CaptionDataset", "DataError", "DataLayout", "GQADataset", "MultitaskLoader", "NLVRDataset", "VQADataset",
    "build_datasets", "build_loaders", "build_tokenizer", "load_tokenizer", "resolve_root", "task_batch_sizes",
    "task_prompts", "to_device",
]
