"""The offline word-level tokenizer and the 200 added VL tokens (pipeline spec §2, model spec §7.1/§7.3)."""

import os

import pytest

from vlpet.data.tokenizer import build_tokenizer, load_tokenizer, tokenizer_style

WORDS = ["vqa: what color", "is the circle?", "true false", "what"]  # split into vqa : what color is the circle ? …


def test_bart_style_ids():
    tok = build_tokenizer("bart", WORDS)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert [vocab[t] for t in ("vqa", ":", "what", "color", "is", "the", "circle", "?", "true", "false")] == list(
        range(4, 14))
    assert vocab["<mask>"] == 14  # BART's base vocabulary ends with <mask>
    assert vocab["<extra_id_99>"] == 15 and vocab["<extra_id_0>"] == 114
    assert vocab["<vis_extra_id_99>"] == 115 and vocab["<vis_extra_id_0>"] == 214
    assert len(tok) == 15 + 200
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.encode("vqa: what color is the circle?") == [0, 4, 5, 6, 7, 8, 9, 10, 11, 2]
    assert tok.encode("vqa: what color is the circle?", max_length=5, truncation=True) == [0, 4, 5, 6, 2]
    assert tok.encode("") == [0, 2]
    assert tok.encode("dog") == [0, 3, 2]


def test_t5_style_ids():
    tok = build_tokenizer("t5", WORDS)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    assert vocab["vqa"] == 3 and vocab["false"] == 12 and "<mask>" not in vocab
    assert vocab["<extra_id_99>"] == 13 and vocab["<extra_id_0>"] == 112
    assert vocab["<vis_extra_id_99>"] == 113 and vocab["<vis_extra_id_0>"] == 212
    assert len(tok) == 13 + 100 + 100
    assert tok.bos_token is None and (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert tok.encode("vqa: what color is the circle?") == [3, 4, 5, 6, 7, 8, 9, 10, 1]
    assert tok.encode("vqa: what color is the circle?", max_length=4, truncation=True) == [3, 4, 5, 1]
    assert tok.encode("") == [1]


@pytest.mark.parametrize("style", ["bart", "t5"])
def test_true_false_ids_and_decode(style):
    tok = build_tokenizer(style, WORDS)
    offset = 4 if style == "bart" else 3
    assert tok("true", add_special_tokens=False).input_ids == [offset + 8]
    assert tok("false", add_special_tokens=False).input_ids == [offset + 9]
    ids = tok.encode("what color") + [tok.convert_tokens_to_ids("<vis_extra_id_3>")]
    assert tok.decode(ids, skip_special_tokens=True) == "what color"


@pytest.mark.parametrize("style", ["bart", "t5"])
def test_save_load_round_trip(style, tmp_path):
    tok = build_tokenizer(style, WORDS)
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path), style)
    assert len(loaded) == len(tok)  # nothing added twice
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.encode("vqa: what is the circle?") == tok.encode("vqa: what is the circle?")
    assert loaded.pad_token_id == tok.pad_token_id and tokenizer_style(loaded) == style


def test_style_mismatch_and_unknown_style(tmp_path):
    build_tokenizer("t5", WORDS).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="t5-style"):
        load_tokenizer(str(tmp_path), "bart")
    with pytest.raises(ValueError, match="style"):
        build_tokenizer("gpt", WORDS)


@pytest.mark.parametrize("name, first, size", [("facebook/bart-base", 50265, 50465), ("t5-base", 32000, 32200)])
def test_hub_tokenizers_when_cached(name, first, size):
    """Runs only where the hub tokenizer is already in the local cache (the tests stay offline)."""
    hub = pytest.importorskip("huggingface_hub")
    cached = hub.try_to_load_from_cache(name, "tokenizer.json")
    if not isinstance(cached, str):
        pytest.skip(f"{name} is not in the local Hugging Face cache")
    tok = load_tokenizer(os.path.dirname(cached))
    assert tok.convert_tokens_to_ids("<extra_id_99>") == first
    assert tok.convert_tokens_to_ids("<vis_extra_id_0>") == size - 1 and len(tok) == size
