"""Speed options of ``python -m vlpet train`` (README "Speed options"): flags → ``SpeedConfig`` → backend settings
and the compiled model. fp32 eager with a NaN check every step is the faithful default; every option is opt-in.

* ``--tf32``: TF32 tensor-core matmuls and convolutions on CUDA (``fp32_precision = "tf32"``); no effect on CPU.
* ``--compile``: ``torch.compile`` of the model's training forward (``VLModel.forward``; evaluation forwards too).
  Generation stays eager: its cache grows by one token per step, so each step is a new shape. When compilation is
  impossible (no C++ compiler for inductor on CPU) or fails at a call, one line says so and the run continues eager.
  Against recompilation storms: the task is set on the model outside the compiled graph (no task string guarded in
  it), the text is padded to a multiple of 8 tokens (the mask hides the padding: the same outputs), the batch
  dimension is marked dynamic, and the visual grid side is specialised, not a graph break (``models/visual.py``).
* ``--bf16``: autocast to bf16 as before, and every *frozen* ``nn.Linear`` keeps a bf16 copy of its weight made
  once (``FrozenBf16Linear``): autocast would cast it again at every call (its weight cache holds only weights
  that require grad) and keep each cast alive for the backward. The matmul inputs are the same bf16 values;
  trained parameters, embeddings and norms stay fp32; checkpoints and the state dict are unchanged.
* ``--micro_batch_size M`` (``train_epoch``): each batch in chunks of at most M examples, one update with the same
  gradients. ``--gradient_checkpointing``: every transformer layer recomputed in the backward
  (``torch.utils.checkpoint``, ``use_reentrant=False``: correct with frozen weights and the injected modules).
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
import torch.nn.functional as F

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
                      deterministic=getattr(args, "deterministic", False),
                      micro_batch_size=getattr(args, "micro_batch_size", 0),
                      gradient_checkpointing=getattr(args, "gradient_checkpointing", False))
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
    """Options that change the model's modules in place (state-dict keys unchanged): the frozen weights' bf16 copy
    under ``--bf16``, ``--gradient_checkpointing``, ``--onednn`` on CPU (a message instead where it cannot act:
    CUDA, a torch build without oneDNN). Call it once the weights are loaded and on their device. Returns ``model``."""
    if cfg.bf16:
        frozen_bf16_copies(model)
    if cfg.gradient_checkpointing:
        gradient_checkpointing(model)
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


class FrozenBf16Linear(torch.nn.Linear):
    """An ``nn.Linear`` with a frozen weight whose bf16 copy is made once (a non-persistent buffer: the state dict
    is unchanged). Under bf16 autocast on the copy's device the forward is ``F.linear(x.bf16(), copy, bias)``, what
    autocast computes from the fp32 weight, without casting it at every call; otherwise the stock forward. The copy
    is remade when the weight changes in place (a checkpoint loaded later)."""

    def refresh(self) -> None:
        with torch.no_grad():
            self.register_buffer("weight_bf16", self.weight.detach().to(torch.bfloat16), persistent=False)
        self._copied_version = self.weight._version

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = x.device.type
        if (not self.weight.requires_grad and torch.is_autocast_enabled(kind)
                and torch.get_autocast_dtype(kind) == torch.bfloat16 and self.weight_bf16.device == x.device):
            if not torch.compiler.is_compiling() and self.weight._version != self._copied_version:
                self.refresh()
            return F.linear(x.to(torch.bfloat16), self.weight_bf16, self.bias)
        return F.linear(x, self.weight, self.bias)


def frozen_bf16_copies(model: torch.nn.Module) -> int:
    """Give every plain ``nn.Linear`` whose weight is frozen a bf16 copy (``FrozenBf16Linear``); returns how many.
    Trained Linears (and every parameter) stay fp32."""
    n = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear and not module.weight.requires_grad:
            module.__class__ = FrozenBf16Linear
            module.refresh()
            n += 1
    return n


def gradient_checkpointing(model: torch.nn.Module) -> int:
    """Recompute every transformer layer (the stock ``GradientCheckpointingLayer`` blocks: encoder, decoder and
    LST side blocks) in the backward instead of keeping its activations, with the non-reentrant
    ``torch.utils.checkpoint`` (inputs need not require grad, frozen weights and injected PET modules are handled,
    dropout replays its masks); returns how many layers."""
    from functools import partial

    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    n = 0
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module.gradient_checkpointing = True
            module._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
            n += 1
    return n


def compile_problem(cfg: SpeedConfig, device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run here, or None."""
    if cfg.compile_backend == "inductor" and device.type == "cpu":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None:
            return f"inductor needs a C++ compiler on CPU and {cxx!r} is not on PATH (set CXX)"
    return None


class CompiledForward:
    """``model.forward`` replaced by its compiled version; on a compilation failure, one message and eager from
    then on (a real error in the model is raised again by the eager call). ``failed`` says which ran.

    Before the compiled call: the task goes onto the model (``current_task``), not into the graph; the text is
    padded with the pad token to a multiple of ``pad_to`` (8) tokens, its padding masked as any other; the batch
    dimension of the inputs and the length of the token tensors are marked dynamic, so that the per-task batch
    sizes and lengths share one graph instead of recompiling until dynamo generalises them."""

    pad_to = 8

    def __init__(self, model: torch.nn.Module, backend: str, warn=None):
        self.model = model
        self.eager = model.forward
        self.compiled = torch.compile(self.eager, backend=backend)
        self.failed = False
        self.warn = warn or _stderr

    def _prepare(self, args, kwargs):
        if "task" in kwargs:
            task = kwargs.pop("task")
            if task is not None:
                self.model.current_task = task
        args = list(args)
        ids = args[0] if args else kwargs.get("input_ids")
        pad_id = getattr(getattr(self.model, "config", None), "pad_token_id", None)
        extra = -ids.shape[1] % self.pad_to if torch.is_tensor(ids) and ids.dim() == 2 else 0
        if extra and pad_id is not None:
            ids = F.pad(ids, (0, extra), value=pad_id)
            if kwargs.get("attention_mask") is not None:
                kwargs["attention_mask"] = F.pad(kwargs["attention_mask"], (0, extra), value=0)
            if args:
                args[0] = ids
            else:
                kwargs["input_ids"] = ids
        for value in (*args, *kwargs.values()):
            if torch.is_tensor(value) and value.dim() and value.shape[0] > 1:
                torch._dynamo.maybe_mark_dynamic(value, 0)  # the batch
                if value.dim() == 2 and not value.is_floating_point() and value.shape[1] > 1:
                    torch._dynamo.maybe_mark_dynamic(value, 1)  # token ids, masks, labels: the length
                elif value.is_floating_point():  # features and boxes: the image / token / feature sizes are fixed
                    for dim in range(1, value.dim()):
                        torch._dynamo.mark_static(value, dim)
        return args, kwargs

    def __call__(self, *args, **kwargs):
        if not self.failed:
            args, kwargs = self._prepare(args, kwargs)
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


def compile_stats() -> dict:
    """What torch.compile did in this process: graphs compiled (each recompilation adds one) and graph breaks."""
    from torch._dynamo.utils import counters

    return {"unique_graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(counters["graph_break"].values()))}
