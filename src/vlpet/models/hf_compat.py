"""The few places where the supported transformers 5.x releases differ (tested range in pyproject.toml).

transformers 5.24 renamed the decoder cache argument ``past_key_values`` to ``cache`` (the old name stays a
deprecated alias there). Before 5.24, ``generate(cache=…)`` is refused ("model_kwargs not used") and the stock
attention modules, decoder layers and ``create_causal_mask`` take ``past_key_values``. Every call the project makes
with a cache passes it under ``CACHE_KWARG``, read once from the installed release's own signature.
"""

from __future__ import annotations

import inspect

from transformers.models.bart.modeling_bart import BartAttention

CACHE_KWARG = "cache" if "cache" in inspect.signature(BartAttention.forward).parameters else "past_key_values"
"""The name the installed transformers gives the decoder cache: "cache" (5.24 on) or "past_key_values" (before)."""

CACHE_NAMES = ("cache", "past_key_values")


def cache_kwargs(cache, kwargs: dict) -> dict:
    """``{CACHE_KWARG: cache}`` for a host layer's call into the stock attention; the cache the stock decoder passed
    under the other name (``past_key_values`` before 5.24) is taken out of ``kwargs`` so it is passed once."""
    for name in CACHE_NAMES:
        if name in kwargs:
            found = kwargs.pop(name)
            cache = found if cache is None else cache
    return {CACHE_KWARG: cache}
