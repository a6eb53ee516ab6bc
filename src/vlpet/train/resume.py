"""Where a run starts from: ``--load`` initial weights, or ``--resume`` from the newest usable checkpoint."""

from __future__ import annotations

from pathlib import Path

from ..pet.official import CheckpointError
from .checkpoint import latest_checkpoint, load_checkpoint, previous_checkpoint
from .runlog import RunLog


def load_initial_weights(model, load: str) -> Path:
    """``--load X``: initial weights, as the official flag (``X`` or ``X.pth``, the official full state dict with or
    without ``module.``), or one of our checkpoint folders (``X`` holding ``pet_weights.safetensors``, e.g.
    ``snap/…/LAST`` or ``BEST``; a folder ``vlpet export`` wrote, or its Hub repo id). Unlike the official
    ``strict=False``, keys that do not fit are one error naming them. With ``--epochs 0`` the run only tests (the
    official multitask_infer)."""
    from ..hub_export import resolve
    from ..pet.official import load_official_state_dict, read_checkpoint

    path = resolve(load)  # a Hub repo id (owner/name, not a local path): its snapshot (``vlpet export``/``push``)
    if (path / "pet_weights.safetensors").is_file():
        load_checkpoint(path, model)
        return path
    for candidate in (path, Path(f"{load}.pth")):
        if candidate.is_file():
            load_official_state_dict(model, read_checkpoint(candidate))
            return candidate
    raise CheckpointError(f"--load {load}: neither a checkpoint folder ({path / 'pet_weights.safetensors'}) nor an "
                          f"official state dict ({path} or {load}.pth) exists")


def resume_state(run_dir: Path, model, optimizer, scheduler, log: RunLog) -> tuple[dict | None, Path | None]:
    """Load ``LATEST`` (or, when it is unreadable or corrupt, the previous checkpoint kept beside it) into the
    model, optimizer and scheduler; (None, None) when nothing was saved yet."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None, None
    try:
        return load_checkpoint(latest, model, optimizer, scheduler), latest
    except CheckpointError as err:
        previous = previous_checkpoint(latest)
        if previous is None:
            raise CheckpointError(f"cannot resume: {err}; no previous checkpoint is kept beside it. Start a new run "
                                  f"with another --output (or --load an older checkpoint folder)") from None
        log.line(f"warning: {err}; falling back to the previous checkpoint {previous}")
        try:
            return load_checkpoint(previous, model, optimizer, scheduler), previous
        except CheckpointError as older:
            raise CheckpointError(f"cannot resume: {err}; and the previous one: {older}") from None
