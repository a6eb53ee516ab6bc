"""Where a run starts from: ``--load`` initial weights, or ``--resume`` from the newest usable checkpoint."""

from __future__ import annotations

from pathlib import Path

from ..pet.official import CheckpointError
from .checkpoint import latest_checkpoint, load_checkpoint, previous_checkpoint
from .data import IMAGE_TASKS
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


# Flags a resume may change: they do not change what is trained or how (where things are, how fast, what is shown).
# Every other flag recorded in the checkpoint must be given the run's value again; --epochs may only grow.
RESUME_MAY_CHANGE = frozenset({
    "resume", "load",  # --load is ignored with --resume
    "output", "run_name",  # they name the folder being resumed, so they already point to it
    "datasets_root",  # the same data moved (e.g. copied to a local disk)
    "num_workers", "no_progress", "wandb", "comment",  # loading and logging
    "device", "local_rank", "distributed", "multiGPU",  # the device; the process count is checked on its own
    "save_every_steps", "nan_check_every", "ddp_timeout",  # when to save, check, give up waiting
    "compile", "compile_backend", "onednn",  # kernels: equal to fp32 rounding (bf16 and tf32 are the run's numerics)
    "deterministic",  # which kernels, not what they compute
    "micro_batch_size", "gradient_checkpointing",  # the same update with less memory (tests/test_fast_path.py)
    "valid_batch_size",  # not used by this trainer (evaluation runs at the per-task training batch sizes)
    "method", "method_flags", "help_all",  # --method expands into flags, and those are compared one by one
})


def run_record(run_dir: Path) -> tuple[dict | None, Path | None]:
    """The config a run was trained with (``{"model", "pet", "args", "world_size"}``): the latest checkpoint's
    record, else the run folder's ``config.json``; (None, None) when neither can be read."""
    import json

    from .checkpoint import read_checkpoint_config

    try:
        latest = latest_checkpoint(run_dir)
        if latest is not None:
            return read_checkpoint_config(latest)["config"], latest / "pet_config.json"
    except (CheckpointError, KeyError, TypeError, OSError):
        pass
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (OSError, ValueError):
        return None, None


def _plain(value):
    import json

    return json.loads(json.dumps(value, default=str))


def _tasks(value):
    return [t.strip() for t in str(value or "").split(",") if t.strip()] or list(IMAGE_TASKS)


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "(none)" if value is None or value == "" else str(value)


def resume_changes(args, record: dict, world_size: int = 1) -> list[str]:
    """The run-defining flags of ``args`` that differ from ``record`` (a run's config), in words; [] when none."""
    recorded = record.get("args") or {}
    current = {k: v for k, v in vars(args).items() if k != "explicit"}
    changes = []
    for name in sorted(recorded):
        if name in RESUME_MAY_CHANGE or name not in current:
            continue
        old, new = recorded[name], _plain(current[name])
        if name == "tasks":
            old, new = _tasks(old), _tasks(new)
            if old == new:
                continue
            old, new = ",".join(old), ",".join(new)
        if name == "epochs" and isinstance(old, int) and isinstance(new, int):
            if new < old:
                changes.append(f"--epochs {new} (the run: {old}; only a larger --epochs can be resumed)")
            continue
        if old != new:
            changes.append(f"--{name} {_shown(new)} (the run: {_shown(old)})")
    old_world = record.get("world_size")
    if isinstance(old_world, int) and old_world != world_size:
        changes.append(f"{world_size} process(es) (the run: {old_world}; its global batch and data order depend on "
                       f"it: launch {old_world} process(es), e.g. NPROC={old_world})")
    return changes


def check_resume_flags(args, run_dir: Path, world_size: int = 1) -> None:
    """``--resume`` refuses flags that differ from the run's record (``RESUME_MAY_CHANGE`` lists those that may):
    one ``ValueError`` naming each change and the run's value."""
    record, path = run_record(run_dir)
    if record is None:
        return
    changes = resume_changes(args, record, world_size)
    if changes:
        raise ValueError(f"--resume refuses changed flags: {'; '.join(changes)}. Resume with the run's values "
                         f"(recorded in {path}; they define what it trains), or start a new run with another --output")
