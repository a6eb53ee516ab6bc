"""Image-text data: the on-disk layout, per-task datasets and collate, multi-task mixing, tokenizers, synthetic data.

Batch interface (one dict per single-task batch; see each dataset's docstring for its metadata lists):
``task`` (str), ``input_ids`` (B, L) long padded with ``pad_token_id``, ``target_ids`` (B, T) long with -100 at
padding (labelled splits only), ``vis_feats`` float32 (B, 49, F) or (B, 2, 49, F) for NLVR2 (raw 7x7 grids; the
model pools them), ``boxes`` float32 zeros (B, 49, 4) or (B, 2, 49, 4), ``scores`` (B,) float for VQA and ``labels``
(B,) long for NLVR2.
"""

from .caption import CaptionDataset
from .gqa import GQADataset
from .layout import DataError, DataLayout, resolve_root
from .multitask import MultitaskLoader, build_datasets, build_loaders, task_batch_sizes, task_prompts
from .nlvr import NLVRDataset
from .tokenizer import build_tokenizer, load_tokenizer
from .vqa import VQADataset

__all__ = [
    "CaptionDataset", "DataError", "DataLayout", "GQADataset", "MultitaskLoader", "NLVRDataset", "VQADataset",
    "build_datasets", "build_loaders", "build_tokenizer", "load_tokenizer", "resolve_root", "task_batch_sizes",
    "task_prompts",
]
