"""Parameter-efficient tuning methods, injected into stock HF models.

``METHODS`` maps a method name to ``apply(model, cfg) -> list[str]``: it injects the method's modules into a
VLModel in place, initialises them, sets the trainable set, and returns the names of the injected modules.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import PETConfig
from .vlpet import apply_vlpet

METHODS: dict[str, Callable[..., list[str]]] = {
    "vl-pet": apply_vlpet,
}


def apply_method(model, cfg: PETConfig) -> list[str]:
    try:
        apply = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"unknown PET method {cfg.method!r}; choose one of {sorted(METHODS)}") from None
    return apply(model, cfg)


__all__ = ["METHODS", "apply_method"]
