"""Tokenizers with the 200 tokens VL-BART/VL-T5 add: ``<extra_id_99..0>`` then ``<vis_extra_id_99..0>``.

* ``load_tokenizer``: the hub tokenizers (``facebook/bart-base``, ``t5-base``) or a saved one, with the added tokens
  in the official order. BART: 50265 + 200 = 50465, so ``<vis_extra_id_k>`` is id 50464 - k. T5: ``t5-base`` already
  has ``<extra_id_*>`` (32000..32099), the visual ones follow (32100..32199), 32200 in all (pipeline spec §2).
* ``build_tokenizer``: an offline word-level tokenizer for the synthetic data and the demo, with the same special
  tokens and the same added-token layout (base vocabulary, then the 200 added tokens).
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

EXTRA_IDS = [f"<extra_id_{i}>" for i in range(99, -1, -1)]
VIS_EXTRA_IDS = [f"<vis_extra_id_{i}>" for i in range(99, -1, -1)]
STYLES = ("bart", "t5")

# Leading special tokens of each style's base vocabulary, in id order (BART also ends its base vocab with <mask>).
_BASE_SPECIALS = {"bart": ["<s>", "<pad>", "</s>", "<unk>"], "t5": ["<pad>", "</s>", "<unk>"]}
_NAMED_SPECIALS = {
    "bart": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
             "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"},
    "t5": {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
}
_TEMPLATES = {
    "bart": ("<s> $A </s>", "<s> $A </s> </s> $B </s>"),
    "t5": ("$A </s>", "$A </s> $B </s>"),
}


def add_vl_tokens(tokenizer) -> int:
    """Add the missing ``<extra_id_*>`` / ``<vis_extra_id_*>`` tokens in the official order; returns how many."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in EXTRA_IDS + VIS_EXTRA_IDS if token not in vocab]
    return tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)


def tokenizer_style(tokenizer) -> str:
    """"bart" when the tokenizer has a ``<s>`` bos token (BART-style ``<s> … </s>``), else "t5" (``… </s>``)."""
    return "bart" if tokenizer.bos_token is not None else "t5"


def load_tokenizer(name_or_path: str, style: str | None = None):
    """Load a tokenizer (hub id or folder) and add the 200 VL tokens; ``style`` (if given) must match it."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if style is not None and tokenizer_style(tokenizer) != style:
        raise ValueError(f"{name_or_path} is a {tokenizer_style(tokenizer)}-style tokenizer, not {style}")
    add_vl_tokens(tokenizer)
    return tokenizer


def _base_vocab(style: str, words: Iterable[str]) -> dict[str, int]:
    splitter = pre_tokenizers.Whitespace()
    tokens = list(_BASE_SPECIALS[style])
    for text in words:
        tokens += [piece for piece, _ in splitter.pre_tokenize_str(text) if piece not in tokens]
    if style == "bart":
        tokens.append("<mask>")
    return {token: index for index, token in enumerate(tokens)}


def build_tokenizer(style: str = "bart", words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``words`` (each string is split on whitespace and punctuation).

    Ids: BART style ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, the words in first-seen order, ``<mask>``, then
    the 200 added tokens; T5 style ``<pad>``=0, ``</s>``=1, ``<unk>``=2, the words, then the 200 added tokens.
    ``encode`` gives ``<s> … </s>`` (BART) or ``… </s>`` (T5), like the real tokenizers.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    vocab = _base_vocab(style, words)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    single, pair = _TEMPLATES[style]
    specials = [(token, vocab[token]) for token in ("<s>", "</s>") if token in single]
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=1024, **_NAMED_SPECIALS[style])
    add_vl_tokens(tokenizer)
    return tokenizer
