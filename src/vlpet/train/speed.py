"""Speed options of ``python -m vlpet train`` (README "Speed options"): flags → ``SpeedConfig`` → backend settings
and the compiled model. fp32 eager with a NaN check every step is the faithful default; every option is opt-in.

* ``--tf32``: TF32 tensor-core matmuls and convolutions on CUDA (``fp32_precision = "tf32"``); no effect on CPU.
* ``--compile``: ``torch.compile`` of the model's training forward (``VLModel.forward``; evaluation forwards too).
  Generation stays eager: its cache grows by one token per step, so each step is a new shape. When compilation is
  impossible (no C++ compiler for inductor on CPU) or fails at a call, one line says so and the run continues eager.
* ``--onednn``: on CPU, the model's fp32 ``nn.Linear`` forwards run on oneDNN instead of MKL
  (``models/onednn.py``: 1.2-2.5× faster GEMMs on the team's AVX2 machine, outputs equal to fp32 rounding; the
  input gradient through frozen Linears on oneDNN too, from a kept copy of Wᵀ); nothing on CUDA, under ``--bf16``
  autocast or inside ``--compile``d graphs.
* ``--nan_check_every N``: check the loss for NaN/inf (one host sync) every N steps instead of every step
  (``train_epoch``); ``--save_every_steps`` must then be a multiple of N, so that a checkpoint never holds weights
  updated from an unchecked loss.
* ``--deterministic``: the same run gives the same bits on the same machine (``deterministic_mode``):
  ``torch.use_deterministic_algorithms(True)``, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set before CUDA starts),
  ``cudnn.deterministic`` without benchmark autotuning, and on CUDA the math SDPA kernel only (the flash and
  memory-efficient kernels' backward accumulate with atomics). Slower on GPU; an op with no deterministic CUDA kernel
  stops the run at its first step with torch's error naming it. Not with ``--compile``.
* Pinned host memory with non-blocking copies is automatic on CUDA (the loaders pin, ``DeviceLoader`` copies
  non-blocking).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys

import torch

from ..config import SpeedConfig
from ..models import onednn
from ..flags.parse import check_save_every


def _stderr(text: str) -> None:
    """Where the speed options' warning lines go unless a caller passes its own ``warn``."""
    print(text, file=sys.stderr, flush=True)


def speed_config_from_args(args: argparse.Namespace) -> SpeedConfig:
    """``SpeedConfig`` from the parsed flags; a ``--save_every_steps`` that is not a multiple of N is an error."""
    cfg = SpeedConfig(bf16=args.bf16, tf32=args.tf32, compile=args.compile, compile_backend=args.compile_backend,
                      nan_check_every=args.nan_check_every, onednn=getattr(args, "onednn", False),
                      deterministic=getattr(args, "deterministic", False))
    check_save_every(getattr(args, "save_every_steps", 0), cfg.nan_check_every)
    return cfg


def apply_backends(cfg: SpeedConfig) -> None:
    """Process-wide matmul settings: TF32 on CUDA when asked; torch's defaults (full fp32 matmuls) otherwise."""
    if cfg.tf32:
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"


CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's documented settings for reproducible results: ":4096:8" or ":16:8"
_SDP = ("flash", "mem_efficient", "math", "cudnn")


@contextlib.contextmanager
def deterministic_mode(enabled: bool):
    """``--deterministic`` for the block, everything restored on exit (the trainer wraps a whole run in it, before
    CUDA is initialised, so cuBLAS reads the workspace setting when it creates its handle)."""
    if not enabled:
        yield
        return
    backends = torch.backends
    saved_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             backends.cudnn.deterministic, backends.cudnn.benchmark,
             {k: getattr(backends.cuda, f"{k}_sdp_enabled")() for k in _SDP})
    if saved_env not in (":4096:8", ":16:8"):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True)
    backends.cudnn.deterministic, backends.cudnn.benchmark = True, False
    for kind in _SDP:  # SDPA on CUDA: the math kernel (its backward is plain matmuls); no effect on CPU
        getattr(backends.cuda, f"enable_{kind}_sdp")(kind == "math")
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved_env
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        backends.cudnn.deterministic, backends.cudnn.benchmark = saved[2], saved[3]
        for kind, on in saved[4].items():
            getattr(backends.cuda, f"enable_{kind}_sdp")(on)


def apply_model_options(model: torch.nn.Module, cfg: SpeedConfig, device: torch.device, warn=None) -> torch.nn.Module:
    """Options that change the model's modules in place (state-dict keys unchanged): ``--onednn`` on CPU; a
    message instead where it cannot act (CUDA, a torch build without oneDNN). Returns ``model``."""
    if not cfg.onednn:
        return model
    warn = warn or _stderr
    problem = onednn.unavailable() if device.type == "cpu" else f"it is a CPU option and the run is on {device}"
    if problem:
        warn(f"warning: --onednn ignored: {problem}")
        return model
    if cfg.bf16:
        warn("warning: --onednn acts on fp32 Linears only; under --bf16 autocast they run the stock bf16 path")
    onednn.use_onednn(model)
    return model


def compile_problem(cfg: SpeedConfig, device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run here, or None."""
    if cfg.compile_backend == "inductor" and device.type == "cpu":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None:
            return f"inductor needs a C++ compiler on CPU and {cxx!r} is not on PATH (set CXX)"
    return None


class CompiledForward:
    """``model.forward`` replaced by its compiled version; on a compilation failure, one message and eager from
    then on (a real error in the model is raised again by the eager call)."""

    def __init__(self, model: torch.nn.Module, backend: str, warn=None):
        self.eager = model.forward
        self.compiled = torch.compile(self.eager, backend=backend)
        self.failed = False
        self.warn = warn or _stderr

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as err:
                self.failed = True
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                self.warn(f"warning: --compile failed ({type(err).__name__}: {first[:200]}); running eager")
        return self.eager(*args, **kwargs)


def compile_model(model: torch.nn.Module, cfg: SpeedConfig, device: torch.device, warn=None) -> torch.nn.Module:
    """With ``--compile``, swap ``model.forward`` for a ``CompiledForward`` (state-dict keys and every other
    method unchanged); returns ``model``."""
    if not cfg.compile:
        return model
    warn = warn or _stderr
    problem = compile_problem(cfg, device)
    if problem:
        warn(f"warning: --compile: {problem}; running eager")
        return model
    model.forward = CompiledForward(model, cfg.compile_backend, warn)
    return model
