"""Every transformers release in pyproject.toml's tested range (issue 20 item 1): beam search through the public
path (a Task's ``predict`` → ``VLModel.generate`` with the once-per-image cross-attention cache) runs and gives the
stock search. Before 5.24 the decoder cache is ``past_key_values`` and ``generate(cache=…)`` was refused; run this
file with another release's interpreter to check it (docs/gpu.md, "Versions supported")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import transformers

from vlpet.config import ModelConfig
from vlpet.flags.published import method_preset
from vlpet.models.build import build_model
from vlpet.models.hf_compat import CACHE_KWARG
from vlpet.tasks import get_task

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


class _Ids:
    """A tokenizer stand-in: the ids as text, so the captions compare the generated sequences exactly."""

    def batch_decode(self, ids, skip_special_tokens=True):
        return [" ".join(str(int(i)) for i in row) for row in ids]


def test_the_installed_release_is_in_the_stated_range_and_its_cache_name_is_known():
    low, high = re.search(r'"transformers>=([\d.]+),<(\d+)"', PYPROJECT.read_text()).groups()
    assert _version(low) <= _version(transformers.__version__) < (int(high),)
    assert CACHE_KWARG == ("cache" if _version(transformers.__version__) >= (5, 24) else "past_key_values")


@pytest.mark.parametrize("backbone,kind", [("tiny-bart", "bart"), ("tiny-t5", "t5")])
def test_beam_search_through_the_caption_task_equals_the_stock_search(backbone, kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, feat_dim=32), method_preset("vl-pet-large", kind)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # non-zero PET and VPA: the adapters act inside the cached cross-attention
                p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (3, 7), generator=g)
    ids[1, 5:] = model.config.pad_token_id
    batch = {"img_ids": ["a", "b", "c"], "input_ids": ids, "vis_feats": torch.randn(3, 49, 32, generator=g),
             "boxes": torch.zeros(3, 49, 4)}
    task = get_task("caption", num_beams=5, max_length=8)
    captions = task.predict(model, [batch], _Ids())
    assert list(captions) == ["a", "b", "c"] and all(captions.values())
    with torch.no_grad():  # the stock search: an explicit cache argument skips the once-per-image cache
        stock = model.generate(ids, batch["vis_feats"], batch["boxes"], task="caption", num_beams=5, max_length=8,
                               cache=None)
    assert list(captions.values()) == _Ids().batch_decode(stock)
