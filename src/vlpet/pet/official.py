"""Load state dicts saved by the official VL-PET code (full ``.pth`` checkpoints or the golden fixtures).

Each of our parameters/buffers is mapped to the official key(s) holding it (model spec §1.3 names):
  backbone keys                      : ours without the ``lm.`` prefix (``model.encoder.…`` / ``encoder.…``)
  visual embedding                   : ``[model.]encoder.visual_embedding.…``
  encoder adapter down (one Linear)  : ``…{attn,ff}_adapter_multihead_down.{0..N_h−1}`` stacked row-wise
  encoder adapter up                 : ``…{attn,ff}_adapter_multihead_up``
  gate parameters                    : ``…encoder_{attn,ff}_adapter_gating_<gate.official_names[…]>``
  decoder VPA                        : ``…attn_value_parallel_adapter.adapters.<task>.{down,up}_sampler``
  classic / Compacter adapters       : ``…{attn,ff,self_attn,enc_attn}_adapter.adapters.<task>.{down,up}_sampler``
  LoRA                               : ``…{q,v}_proj.lora_{As,Bs}.<task>``
  encoder prompt                     : ``…encoder.prompt_modules.prompts.<task>.prefix_embedding.…``
Accepted extra official keys: ``module.`` prefixes, the tied copies of the shared embedding, and the other
tasks' keys of a single (shared) adapter when they hold the same tensor. Anything missing, unexpected or
mis-shaped is reported in one ``CheckpointError`` naming the keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from .prompt import EncoderPrompt
from .sublayer import SublayerPET
from .vpa import VPALinear

_TIED = re.compile(r"(^|\.)(embed_tokens|obj_order_embedding)\.weight$|^lm_head\.weight$"
                   r"|(^|\.)(encoder|decoder)\.task_embed\.task_to_embeddings\.")
_TASK_ADAPTER = re.compile(r"^(.*\.(?:adapters|prompts|lora_As|lora_Bs)\.)[^.]+((?:\..*)?)$")
# Our decoder/encoder site → the official AdapterController attribute.
_CONTROLLER_SITES = {("encoder", "attn"): "attn_adapter", ("encoder", "ffn"): "ff_adapter",
                     ("decoder", "self"): "self_attn_adapter", ("decoder", "cross"): "enc_attn_adapter",
                     ("decoder", "ffn"): "ff_adapter"}


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the offending keys."""


def official_key_table(model: nn.Module) -> dict[str, list[str] | re.Pattern]:
    """Our key → the official keys (stacked along dim 0), or a pattern matching any task's copy."""
    table: dict[str, list[str] | re.Pattern] = {}
    owners = {name + (".vpa" if isinstance(m, VPALinear) else ""): m for name, m in model.named_modules()
              if isinstance(m, (SublayerPET, VPALinear, EncoderPrompt))}
    encoder = "model.encoder." if model.kind == "bart" else "encoder."
    for key, _ in _named_tensors(model):
        owner = next((n for n in owners if key.startswith(n + ".")), None)
        leaf = key.rsplit(".", 1)[-1]
        if key.startswith("visual_embedding."):
            table[key] = [encoder + key]
        elif key.startswith("hyperformer."):
            table[key] = [_hyperformer_key(key, encoder[: -len("encoder.")])]
        elif owner is None and leaf in ("lora_A", "lora_B"):
            table[key] = _task_pattern(_strip_lm(key[: -len(leaf) - 1]) + f".{leaf}s.", "")
        elif owner is None:
            table[key] = [_strip_lm(key)]
        elif isinstance(owners[owner], SublayerPET):
            table[key] = _sublayer_keys(owners[owner], _strip_lm(owner), key[len(owner) + 1:])
        elif isinstance(owners[owner], EncoderPrompt):
            table[key] = _task_pattern(encoder + "prompt_modules.prompts.", key[len(owner):])
        else:
            table[key] = _vpa_key(_strip_lm(owner), key[len(owner) + 1:])
    return table


def _hyperformer_key(key: str, model_prefix: str) -> str:
    _, part, rest = key.split(".", 2)
    if part == "task_embeddings":
        return f"{model_prefix}shared_task_embed.task_to_embeddings.{rest}"
    return f"{model_prefix}{part}.adapter_layers_hyper_net.{rest}"


def _task_pattern(before: str, after: str) -> re.Pattern:
    """Official keys of a module stored per task (``…<before><task><after>``): any task's copy."""
    return re.compile(re.escape(before) + r"[^.]+" + re.escape(after))


def _named_tensors(model: nn.Module):
    """Parameters (each shared one once) and persistent buffers."""
    persistent = set(model.state_dict().keys())
    yield from model.named_parameters()
    yield from ((n, b) for n, b in model.named_buffers() if n in persistent)


def _strip_lm(key: str) -> str:
    return key[3:] if key.startswith("lm.") else key


def _sublayer_keys(pet: SublayerPET, owner: str, local: str) -> list[str]:
    # BART hosts are "<layer>.attn_pet" / "<layer>.ffn_pet"; T5 hosts are "<block>.layer.<i>.pet".
    base = owner.rsplit(".", 1)[0]
    site = "ff" if pet.site == "ffn" else "attn"
    part, rest = local.split(".", 1)
    if part == "adapter" and pet.naming == "controller":
        proj, leaf = rest.split(".", 1)
        stack = "decoder" if ".decoder." in f".{owner}." else "encoder"
        # The T5 forks name the decoder self-attention adapter like the encoder's (``layer.0.attn_adapter``).
        attr = "attn_adapter" if ".block." in owner and pet.site == "self" else _CONTROLLER_SITES[stack, pet.site]
        return _task_pattern(f"{base}.{attr}.adapters.", f".{proj}_sampler.{leaf}")
    if part == "adapter":
        proj, leaf = rest.split(".", 1)
        if proj == "down":
            return [f"{base}.{site}_adapter_multihead_down.{h}.{leaf}" for h in range(pet.adapter.num_heads)]
        return [f"{base}.{site}_adapter_multihead_up.{leaf}"]
    owner_name, _, leaf = rest.partition(".")
    try:
        official = pet.gate.official_names[owner_name]
    except KeyError:
        raise CheckpointError(f"the {type(pet.gate).__name__} has no counterpart in the official code") from None
    return [f"{base}.encoder_{site}_adapter_gating_{official}" + (f".{leaf}" if leaf else "")]


def _vpa_key(owner: str, local: str) -> re.Pattern:
    base = owner.rsplit(".", 2)[0]  # owner is "<attention>.<v_proj|v>.vpa"
    proj, leaf = local.split(".", 1)
    return _task_pattern(f"{base}.attn_value_parallel_adapter.adapters.", f".{proj}_sampler.{leaf}")


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy an official state dict into ``model`` (strict: every tensor of the model must be provided)."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    values, consumed, missing, mismatched = {}, set(), [], []
    tensors = dict(_named_tensors(model))
    for key, spec in official_key_table(model).items():
        names = [k for k in sd if spec.fullmatch(k)][:1] if isinstance(spec, re.Pattern) else spec
        if not names or any(n not in sd for n in names):
            missing.append(spec.pattern if isinstance(spec, re.Pattern) else ", ".join(names))
            continue
        value = torch.cat([sd[n] for n in names]) if len(names) > 1 else sd[names[0]]
        if value.shape != tensors[key].shape:
            mismatched.append(f"{key} ← {names[0]}: checkpoint {tuple(value.shape)} vs model {tuple(tensors[key].shape)}")
            continue
        values[key] = value
        consumed.update(names)
    unexpected = [k for k in sd if k not in consumed and not _is_alias(k, sd, consumed)]
    _raise_if_bad(missing, unexpected, mismatched)
    with torch.no_grad():
        for key, value in values.items():
            tensors[key].copy_(value)


def _is_alias(key: str, sd: Mapping[str, torch.Tensor], consumed: set[str]) -> bool:
    """Tied embedding copies, and other tasks' keys of a shared adapter holding the same tensor."""
    if _TIED.search(key):
        return True
    m = _TASK_ADAPTER.match(key)
    if not m:
        return False
    twins = [k for k in consumed if (t := _TASK_ADAPTER.match(k)) and t.groups() == m.groups()]
    return bool(twins) and torch.equal(sd[twins[0]], sd[key])


def _raise_if_bad(missing: list[str], unexpected: list[str], mismatched: list[str], limit: int = 20) -> None:
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if keys:
            shown = "\n    ".join(keys[:limit]) + (f"\n    … and {len(keys) - limit} more" if len(keys) > limit else "")
            problems.append(f"  {len(keys)} {label} key(s):\n    {shown}")
    if problems:
        raise CheckpointError("the checkpoint does not match this model (is it the same method, backbone and "
                              "sizes?):\n" + "\n".join(problems))


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official ``.pth`` (torch pickle of a state dict) or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated, foreign or corrupt file is one error
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (a torch state dict or .safetensors): "
                              f"{first}") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict")
    return dict(state)
