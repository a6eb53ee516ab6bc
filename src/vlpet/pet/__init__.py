"""Parameter-efficient tuning methods, injected into stock HF models.

``METHODS`` maps a method name to ``apply(model, cfg) -> list[str]``: it injects the method's modules into a
VLModel in place, initialises them, sets the trainable set, and returns the names of the injected modules.
Method names are the published script names.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import PETConfig
from .adapters import apply_adapter, apply_single_adapter, apply_single_compacter
from .bitfit import apply_bitfit, apply_full_finetuning
from .hyperformer import apply_hyperformer
from .lora import apply_lora
from .lst import apply_lst
from .mtl_lora import apply_mtl_lora
from .peft_bridge import apply_peft
from .prompt import apply_prompt
from .ssf import apply_ssf
from .vl_pet import apply_vlpet

METHODS: dict[str, Callable[..., list[str]]] = {
    "vl-pet": apply_vlpet,
    "full_finetuning": apply_full_finetuning,
    "bitfit": apply_bitfit,
    "single_adapter": apply_single_adapter,
    "single_compacter": apply_single_compacter,
    "single_lora": apply_lora,
    "single_prompt": apply_prompt,
    "hyperformer": apply_hyperformer,
    # The Ladder-Side-Tuning repository's T5 configurations (its script names; presets in vlpet.flags.published).
    "lora": apply_lora,
    "adapter": apply_adapter,
    "prompt_tuning": apply_prompt,
    "lst": apply_lst,
    # MTL-LoRA (pUmpKin-Co/MTL-LoRA's VL-BART script; peft lacks it)
    "mtl_lora": apply_mtl_lora,
    # any huggingface/peft tuner on the language model (--peft_config)
    "peft": apply_peft,
    # Methods beyond the paper's (docs/extending.md walks through adding one).
    "ssf": apply_ssf,
}


def apply_method(model, cfg: PETConfig) -> list[str]:
    try:
        apply = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"unknown PET method {cfg.method!r}; choose one of {sorted(METHODS)}") from None
    return apply(model, cfg)


__all__ = ["METHODS", "apply_method"]
