"""Run checkpoints: only what was trained, written atomically, resumable (issue 5 items 2, 4, 7).

A checkpoint is a folder::

    <name>/pet_weights.safetensors   every parameter with requires_grad (the full model for full fine-tuning)
    <name>/pet_config.json           {"format", "vlpet_version", "config": <the run's config>, "saved_keys": [...]}
    <name>/trainer_state.pt          optimizer + scheduler state dicts, the trainer's ``state`` (epoch, step, data
                                     position, ...) and the RNG states; only when an optimizer or a state is given

Atomicity: the folder is built as ``<name>.tmp-<pid>`` (every file fsynced, ``pet_config.json`` last), then swapped
in by renames: an existing ``<name>`` is first renamed to ``<name>.old-<pid>``, the new folder renamed to
``<name>``, and only then the old one deleted. A crash therefore leaves either the old or the new complete folder;
in the one window where neither is called ``<name>`` (between the two renames) ``load_checkpoint`` and
``latest_checkpoint`` rename the complete ``.old`` folder back. ``run_dir/LATEST`` names the checkpoint to resume
from and is replaced atomically (temp file + ``os.replace``) after the checkpoint is complete, so it never points
at a half-written folder. A stop signal (Ctrl-C, SIGTERM, SIGUSR1) arriving during a save is held back until the
save has finished.

With ``keep_previous`` (the trainer's ``LAST``) the replaced checkpoint is kept as ``<name>.prev`` instead of being
deleted, so a newest checkpoint found corrupt later (``pet_config.json`` records the sha256 of every file, checked on
load) still leaves the previous one to resume from. Weights or optimizer state holding NaN/inf are never written
(``NonFiniteStateError``). Files get the user's umask, as every other file of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import __version__
from ..pet.official import CheckpointError
from .interrupts import defer_signals

WEIGHTS = "pet_weights.safetensors"
CONFIG = "pet_config.json"
TRAINER_STATE = "trainer_state.pt"
LATEST = "LATEST"
PREVIOUS = ".prev"
FORMAT = "vlpet-checkpoint/1"

__all__ = ["CheckpointError", "trainable_state_dict", "save_checkpoint", "load_checkpoint", "read_checkpoint_config",
           "mark_latest", "latest_checkpoint", "previous_checkpoint", "describe_checkpoint", "capture_rng",
           "restore_rng", "NonFiniteStateError", "WEIGHTS", "CONFIG", "TRAINER_STATE", "LATEST"]


class NonFiniteStateError(CheckpointError):
    """The weights (or the optimizer state) to be saved hold NaN or inf: the checkpoint is not written."""


# --------------------------------------------------------------------------------------------------- weights
def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP (``.module``) or ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _trainable_params(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in _unwrap(model).named_parameters() if p.requires_grad}


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter with ``requires_grad`` (``named_parameters`` names, tied weights once), nothing else.

    For full fine-tuning (everything trainable) that is the whole model's parameters. The tensors are detached,
    contiguous, on the CPU and never share storage (safetensors refuses shared storage)."""
    # A copy (never the live CPU parameter, never a view sharing storage), detached and contiguous.
    out = {name: p.detach().to("cpu", copy=True).contiguous() for name, p in _trainable_params(model).items()}
    return out


# --------------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """The python, numpy, torch CPU and (when available) the current CUDA device's RNG states, as plain values and
    tensors (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rng: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # this process's device only (under DDP each rank saves its own state)
        rng["cuda_current"] = torch.cuda.get_rng_state()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Set the RNG states captured by ``capture_rng`` (missing entries are left alone): the CUDA state on this
    process's current device (older checkpoints: every device's, for the devices present in both the checkpoint
    and this machine)."""
    if "python" in rng:
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in rng:
        s = rng["numpy"]
        keys = s["keys"].numpy() if isinstance(s["keys"], torch.Tensor) else np.asarray(s["keys"])
        np.random.set_state((s["kind"], keys.astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if rng.get("cuda_current") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda_current"])
    elif rng.get("cuda") and torch.cuda.is_available():
        states = list(rng["cuda"])[: torch.cuda.device_count()]
        for i, st in enumerate(states):
            torch.cuda.set_rng_state(st, i)


# --------------------------------------------------------------------------------------------------- files
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays → python values/tensors, recursively (so ``weights_only`` loading accepts them)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _siblings(directory: Path, tag: str) -> list[Path]:
    """``<name>.<tag>-<pid>`` folders next to ``directory``."""
    if not directory.parent.is_dir():
        return []
    prefix = f"{directory.name}.{tag}-"
    return [p for p in directory.parent.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]


def _is_complete(directory: Path) -> bool:
    return (directory / WEIGHTS).is_file() and (directory / CONFIG).is_file()


def _recover(directory: Path) -> None:
    """If a crash hit between the two renames of a swap, put the complete old checkpoint (``.old-<pid>``, or the
    ``.prev`` a ``keep_previous`` swap had just made) back under its name."""
    if directory.exists():
        return
    olds = [p for p in _siblings(directory, "old") + [previous_path(directory)] if _is_complete(p)]
    if olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, directory)
        _fsync_dir(directory.parent)


# --------------------------------------------------------------------------------------------------- save
def _finite(weights: dict[str, torch.Tensor], optimizer) -> list[str]:
    """Names of the tensors (weights, then optimizer state) holding NaN or inf."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if optimizer is not None:
        for index, state in enumerate(optimizer.state.values()):
            bad += [f"optimizer state {index}.{k}" for k, v in state.items()
                    if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    return bad


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_checkpoint(directory: Path, model: nn.Module, config: dict, state: dict | None = None, optimizer=None,
                    scheduler=None, rng: dict | None = None, keep_previous: bool = False) -> Path:
    """Write the checkpoint folder ``directory`` atomically (see the module docstring) and return its path.

    ``config``: a JSON-like dict (e.g. ``{"model": to_dict(model_cfg), "pet": to_dict(pet_cfg), ...}``); values
    JSON cannot hold are written with ``str``.
    ``trainer_state.pt`` is written when ``optimizer`` or ``state`` is given; it holds the optimizer and scheduler
    state dicts, ``state`` and the RNG states (``rng``, from ``capture_rng``; default: captured now).
    ``keep_previous``: an existing ``directory`` becomes ``<directory>.prev`` (replacing an older one).
    Non-finite weights or optimizer state raise ``NonFiniteStateError`` before anything is written."""
    directory = Path(directory)
    weights = trainable_state_dict(model)
    bad = _finite(weights, optimizer)
    if bad:
        raise NonFiniteStateError(f"not saving {directory}: {len(bad)} tensor(s) hold NaN/inf (first: "
                                  f"{', '.join(bad[:3])})")
    directory.parent.mkdir(parents=True, exist_ok=True)
    with defer_signals():
        for stale in _siblings(directory, "tmp"):  # left by a crashed save of this name
            pid = int(stale.name.rsplit("-", 1)[1])
            if pid == os.getpid() or not _pid_alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
        _recover(directory)
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            _write_files(tmp, weights, config, state, optimizer, scheduler, rng)
            _swap_in(tmp, directory, keep_previous)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in _siblings(directory, "old"):
            shutil.rmtree(old, ignore_errors=True)
    return directory


def _write_files(tmp: Path, weights: dict, config: dict, state, optimizer, scheduler, rng) -> None:
    """The checkpoint's files in ``tmp``, each fsynced, with the user's umask; ``pet_config.json`` (holding the
    sha256 of the others) last: it marks the folder complete."""
    from safetensors.torch import save_file

    save_file(weights, str(tmp / WEIGHTS), metadata={"format": FORMAT, "vlpet_version": __version__})
    files = [WEIGHTS]
    if optimizer is not None or state is not None:
        trainer = {
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "state": _plain(dict(state or {})),
            "rng": rng if rng is not None else capture_rng(),
        }
        torch.save(trainer, tmp / TRAINER_STATE)
        files.append(TRAINER_STATE)
    position = {k: v for k, v in (state or {}).items() if k in ("epoch", "step", "epoch_step", "phase")}
    meta = {"format": FORMAT, "vlpet_version": __version__, "config": config, "saved_keys": list(weights),
            "position": _plain(position), "sha256": {name: _sha256(tmp / name) for name in files}}
    (tmp / CONFIG).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")  # Path values → str
    mode = _umask_mode()
    for name in [*files, CONFIG]:
        os.chmod(tmp / name, mode)
        _fsync_file(tmp / name)
    _fsync_dir(tmp)


def _swap_in(tmp: Path, directory: Path, keep_previous: bool = False) -> None:
    """Rename the complete ``tmp`` to ``directory``; an existing ``directory`` is removed only afterwards (or kept
    as ``<directory>.prev``)."""
    old = None
    if directory.exists():
        if keep_previous:
            old = previous_path(directory)
        else:
            old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(directory, old)
    try:
        os.rename(tmp, directory)
    except BaseException:
        if old is not None and not directory.exists():
            os.rename(old, directory)
        raise
    _fsync_dir(directory.parent)
    if old is not None and not keep_previous:
        shutil.rmtree(old, ignore_errors=True)


def previous_path(directory: Path) -> Path:
    return Path(directory).with_name(Path(directory).name + PREVIOUS)


# --------------------------------------------------------------------------------------------------- LATEST
def mark_latest(run_dir: Path, name: str) -> None:
    """Atomically make ``run_dir/LATEST`` name the checkpoint folder ``name`` (a direct child of ``run_dir``)."""
    run_dir = Path(run_dir)
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"checkpoint name must be a plain folder name, got {name!r}")
    if not _is_complete(run_dir / name):
        raise CheckpointError(f"not a complete checkpoint: {run_dir / name}")
    _write_text_atomic(run_dir / LATEST, name + "\n")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder ``run_dir/LATEST`` names; ``None`` when there is no ``LATEST`` (nothing saved yet).

    A ``LATEST`` naming a folder that is not there is an error (``CheckpointError`` naming both paths)."""
    run_dir = Path(run_dir)
    marker = run_dir / LATEST
    if not marker.is_file():
        return None
    name = marker.read_text(encoding="utf-8").strip()
    path = run_dir / name
    if name:
        _recover(path)
    if not name or not _is_complete(path):
        if name and _is_complete(previous_path(path)):
            return previous_path(path)
        raise CheckpointError(f"{marker} names {name!r}, but {path} is not a complete checkpoint")
    return path


def previous_checkpoint(path: Path) -> Path | None:
    """The complete ``<path>.prev`` kept beside ``path`` by ``keep_previous`` saves, if any."""
    prev = previous_path(path) if not Path(path).name.endswith(PREVIOUS) else None
    return prev if prev is not None and _is_complete(prev) else None


def describe_checkpoint(run_dir: Path) -> str:
    """What a run folder holds to resume from, in words (for messages), epochs counted from 1 as in the logs."""
    try:
        path = latest_checkpoint(run_dir)
    except CheckpointError as err:
        return f"no usable checkpoint ({err})"
    if path is None:
        return "no checkpoint (nothing was saved yet)"
    try:
        pos = json.loads((path / CONFIG).read_text(encoding="utf-8")).get("position", {})
    except (OSError, ValueError):
        pos = {}
    where = f"epoch {pos['epoch'] + 1}, global step {pos['step']}" if {"epoch", "step"} <= set(pos) else "saved"
    return f"the checkpoint {path} ({where})"


def _verify(directory: Path) -> None:
    """The files of a checkpoint against the sha256 recorded at save time (checkpoints that record them)."""
    for name, digest in read_checkpoint_config(directory).get("sha256", {}).items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint file missing: {path}")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path} is corrupt: its sha256 differs from the one recorded when it was saved")


# --------------------------------------------------------------------------------------------------- load
def read_checkpoint_config(directory: Path) -> dict:
    """The parsed ``pet_config.json`` of a checkpoint folder (``config``, ``saved_keys``, ``vlpet_version``)."""
    directory = Path(directory)
    _recover(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint config not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _problems(path: Path, missing: list[str], unexpected: list[str], mismatched: list[str], limit: int = 20) -> str:
    lines = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if keys:
            more = f"\n    … and {len(keys) - limit} more" if len(keys) > limit else ""
            shown = "\n    ".join(keys[:limit]) + more
            lines.append(f"  {len(keys)} {label} key(s):\n    {shown}")
    return (f"checkpoint {path} does not match this model's trainable parameters (is it the same method, backbone "
            f"and sizes?):\n" + "\n".join(lines))


def load_checkpoint(directory: Path, model: nn.Module, optimizer=None, scheduler=None, strict: bool = True, *,
                    restore_rng_state: bool | None = None) -> dict:
    """Load a checkpoint folder into ``model``'s trainable parameters; return the saved ``state`` ({} if none).

    ``strict``: the saved keys must equal the model's trainable keys; otherwise only the common keys are loaded.
    Shapes must match either way. Any problem raises one ``CheckpointError`` naming the keys and the path.
    ``optimizer`` / ``scheduler``: restored from ``trainer_state.pt`` (which must then exist).
    ``restore_rng_state``: restore the saved RNG states; default: when an optimizer is given (i.e. resuming)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    _recover(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {directory}")
    wpath = directory / WEIGHTS
    if not wpath.is_file():
        raise CheckpointError(f"checkpoint weights not found: {wpath}")
    _verify(directory)
    try:
        saved = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {wpath}: {e}") from None

    params = _trainable_params(model)
    missing = [k for k in params if k not in saved]
    unexpected = [k for k in saved if k not in params]
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(params[k].shape)}"
                  for k, v in saved.items() if k in params and v.shape != params[k].shape]
    if mismatched or (strict and (missing or unexpected)):
        raise CheckpointError(_problems(wpath, missing if strict else [], unexpected if strict else [], mismatched))

    trainer = None
    want_rng = optimizer is not None if restore_rng_state is None else restore_rng_state
    tpath = directory / TRAINER_STATE
    if tpath.is_file():
        try:
            trainer = torch.load(tpath, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is one error
            raise CheckpointError(f"cannot read {tpath}: {e}") from None
    elif optimizer is not None or scheduler is not None or restore_rng_state:
        raise CheckpointError(f"trainer state not found (needed to resume): {tpath}")

    with torch.no_grad():
        for k, v in saved.items():
            if k in params:
                params[k].copy_(v)
    if trainer is not None:
        if optimizer is not None:
            if trainer.get("optimizer") is None:
                raise CheckpointError(f"{tpath} holds no optimizer state")
            try:
                optimizer.load_state_dict(trainer["optimizer"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise CheckpointError(f"optimizer state in {tpath} does not fit this optimizer: {e}") from None
        if scheduler is not None:
            if trainer.get("scheduler") is None:
                raise CheckpointError(f"{tpath} holds no scheduler state")
            scheduler.load_state_dict(trainer["scheduler"])
        if want_rng and trainer.get("rng"):
            restore_rng(trainer["rng"])
    return dict(trainer.get("state") or {}) if trainer is not None else {}
