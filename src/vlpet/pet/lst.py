"""Ladder Side-Tuning (LST, Sung et al. 2022) for VL-T5, as the Ladder-Side-Tuning repository implements it
(spec t5-baselines-lst.md §5; ``VL-T5/src/modeling_t5.py``, ``my_transformers/modeling_t5.py``).

Each T5 stack gets a side network of width d/r (stock ``T5Block``s with d/r, d_ff/r, d_kv/r and the same heads):
  encoder  s₋₁ = W_first Drop([E(ids); vis]);  s̃ᵢ = gᵢ sᵢ₋₁ + (1−gᵢ)[Wᵢ hᵢ + bᵢ; 0_vis];  sᵢ = SBlkᵢ(s̃ᵢ)
  decoder  r₋₁ = W'_first Drop(E(y));         r̃ᵢ = g'ᵢ rᵢ₋₁ + (1−g'ᵢ)(W'ᵢ dᵢ + b'ᵢ);    rᵢ = SBlk'ᵢ(r̃ᵢ; Z)
  logits   = lm_head(W_up Drop(LN'(r_last)) · d^−½)  (the frozen tied head)
with gᵢ = σ(αᵢ / 0.1), αᵢ = 0 at init, and hᵢ / dᵢ the outputs of backbone block i (before the final LN). The
backbone sees the text only (its decoder cross-attends the text-only encoder output); vision enters the side
network only. The backbone runs under ``torch.no_grad``: no backward graph is ever built through it.
The side blocks start as a structured pruning of the backbone ranked by the empirical Fisher on training samples
(``--load_side_pretrained_weights fisher-v2``, ``init_side_network``). Module names are the official ones
(``encoder.side_block.0…``, ``side_final_upsample``), attached to the stock stacks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.t5.modeling_t5 import (T5Attention, T5Block, T5DenseActDense, T5ForConditionalGeneration,
                                                T5LayerNorm)

from ..config import PETConfig
from ..models.hf_compat import CACHE_KWARG
from ..models.vl_model import VLModel
from .trainable import freeze_all, unfreeze_visual_embedding

GATE_T = 0.1  # SideConfig.gate_T (not on the official CLI)
FISHER_FILE = "lst_fisher.safetensors"


@dataclass
class LSTEncoderOutput(BaseModelOutput):
    """Backbone encoder output (text only) plus the side encoder's output and mask (text + vision)."""

    side_last_hidden_state: torch.Tensor | None = None
    side_attention_mask: torch.Tensor | None = None


# ------------------------------------------------------------------------------------------------ structure
def side_config(config, r: int, decoder: bool):
    cfg = copy.deepcopy(config)
    cfg.d_model, cfg.d_ff, cfg.d_kv = config.d_model // r, config.d_ff // r, config.d_kv // r
    cfg.is_decoder, cfg.use_cache = decoder, False
    return cfg


def attach_side_network(lm: T5ForConditionalGeneration, r: int) -> None:
    """Add the official side modules to the stock stacks (and ``side_final_upsample`` to the LM)."""
    if lm.config.d_model % r or lm.config.d_ff % r or lm.config.d_kv % r:
        raise ValueError(f"side_reduction_factor {r} must divide d_model, d_ff and d_kv")
    d = lm.config.d_model
    for stack in (lm.encoder, lm.decoder):
        cfg = side_config(stack.config, r, stack.is_decoder)
        n = len(stack.block)
        stack.side_block = nn.ModuleList(T5Block(cfg, has_relative_attention_bias=i == 0, layer_idx=i)
                                         for i in range(n))
        stack.side_first_downsample = nn.Linear(d, cfg.d_model)
        stack.side_downsamples = nn.ModuleList(nn.Linear(d, cfg.d_model) for _ in range(n))
        stack.side_gate_params = nn.ParameterList(nn.Parameter(torch.zeros(1)) for _ in range(n))
        stack.final_side_layer_norm = T5LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon)
        stack.side_config = cfg
    lm.side_final_upsample = nn.Linear(d // r, d)
    lm.__class__ = LSTT5ForConditionalGeneration


def side_modules(lm) -> list[nn.Module]:
    return [m for s in (lm.encoder, lm.decoder) for m in (s.side_block, s.side_first_downsample, s.side_downsamples,
                                                          s.side_gate_params, s.final_side_layer_norm)] + \
        [lm.side_final_upsample]


def apply_lst(model, cfg: PETConfig) -> list[str]:
    if model.kind != "t5":
        raise ValueError("LST (Ladder Side-Tuning) is implemented for T5 backbones, as in its VL-T5 code")
    attach_side_network(model.lm, cfg.side_reduction_factor)
    model.__class__ = LSTVLModel
    _init_side_blocks_randomly(model.lm)  # the official init_weights(); fisher-v2 overwrites it at run start
    freeze_all(model)
    for module in side_modules(model.lm):
        module.requires_grad_(True)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    model.side_init, model.side_reduction_factor = cfg.side_init, cfg.side_reduction_factor
    model.samples_for_fisher = cfg.samples_for_fisher
    return [f"lm.{s}.side_block" for s in ("encoder", "decoder")]


def _init_side_blocks_randomly(lm) -> None:
    """T5's ``_init_weights`` on the side blocks (with the backbone's config, as the official code does)."""
    for stack in (lm.encoder, lm.decoder):
        for m in stack.side_block.modules():
            if isinstance(m, (T5Attention, T5DenseActDense, T5LayerNorm)):
                lm._init_weights(m)


# ------------------------------------------------------------------------------------------------ forward
def run_backbone(stack, **kwargs):
    """The frozen stock stack under no_grad: (its output, the output of every block before the final LN)."""
    taps = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: taps.append(out[0])) for b in stack.block]
    try:
        with torch.no_grad():
            out = stack(**kwargs).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    return out, taps


def _ladder(stack, i: int, side: torch.Tensor, tap: torch.Tensor) -> torch.Tensor:
    """s̃ = g s + (1 − g) [W tap + b; 0]: the ladder is zero-padded at the positions the backbone lacks (vision)."""
    gate = torch.sigmoid(stack.side_gate_params[i] / GATE_T)
    down = stack.side_downsamples[i](tap)
    down = torch.nn.functional.pad(down, (0, 0, 0, side.shape[1] - down.shape[1]))
    return gate * side + (1 - gate) * down


def side_encoder(stack, embeds: torch.Tensor, mask: torch.Tensor, taps: list, text_len: int) -> torch.Tensor:
    """Side encoder over [text; vision]; relative bias from side block 0 on the text×text block only."""
    side = stack.side_first_downsample(stack.dropout(embeds))
    n = side.shape[1]
    bias = stack.side_block[0].layer[0].SelfAttention.compute_bias(text_len, text_len, device=side.device)
    bias = torch.nn.functional.pad(bias, (0, n - text_len, 0, n - text_len))
    mask4 = create_bidirectional_mask(config=stack.side_config, inputs_embeds=side, attention_mask=mask)
    for i, block in enumerate(stack.side_block):
        side = block(_ladder(stack, i, side, taps[i]), mask4, bias)[0]
    return stack.dropout(stack.final_side_layer_norm(side))


def side_decoder(stack, embeds: torch.Tensor, taps: list, memory: torch.Tensor, memory_mask: torch.Tensor):
    side = stack.side_first_downsample(stack.dropout(embeds))
    mask4 = create_causal_mask(config=stack.side_config, inputs_embeds=side, attention_mask=None,
                               **{CACHE_KWARG: None})
    memory4 = create_bidirectional_mask(config=stack.side_config, inputs_embeds=side, attention_mask=memory_mask,
                                        encoder_hidden_states=memory)
    bias = cross_bias = None
    for i, block in enumerate(stack.side_block):
        side, bias, cross_bias = block(_ladder(stack, i, side, taps[i]), mask4, bias, memory, memory4, cross_bias)
    return stack.dropout(stack.final_side_layer_norm(side))


class LSTT5ForConditionalGeneration(T5ForConditionalGeneration):
    """The stock LM whose forward, given an ``LSTEncoderOutput``, decodes through the side network (no cache)."""

    def forward(self, encoder_outputs=None, attention_mask=None, decoder_input_ids=None, labels=None, **kwargs):
        if not isinstance(encoder_outputs, LSTEncoderOutput):
            raise ValueError("the LST model decodes from its own encoder output (VLModel.encode)")
        if decoder_input_ids is None:
            decoder_input_ids = self._shift_right(labels)
        embeds = self.decoder.embed_tokens(decoder_input_ids)
        _, taps = run_backbone(self.decoder, inputs_embeds=embeds, encoder_hidden_states=encoder_outputs[0],
                               encoder_attention_mask=attention_mask, use_cache=False)
        out = side_decoder(self.decoder, embeds, taps, encoder_outputs.side_last_hidden_state,
                           encoder_outputs.side_attention_mask)
        out = self.side_final_upsample(out)
        if self.config.scale_decoder_outputs:
            out = out * (self.model_dim ** -0.5)
        return Seq2SeqLMOutput(logits=self.lm_head(out))


class LSTVLModel(VLModel):
    """VL-T5 with LST: ``encode`` returns an ``LSTEncoderOutput``; generation runs without a cache."""

    def encode(self, input_ids, vis_feats, boxes, attention_mask=None, task=None):
        attention_mask, vis = self.begin_encode(input_ids, vis_feats, boxes, attention_mask, task)
        encoder = self.lm.get_encoder()
        text = encoder.embed_tokens(input_ids)
        hidden, taps = run_backbone(encoder, inputs_embeds=text, attention_mask=attention_mask)
        side_mask = torch.cat([attention_mask, attention_mask.new_ones(vis.shape[:2])], dim=1)
        side = side_encoder(encoder, torch.cat([text, vis.to(text.dtype)], dim=1), side_mask, taps, text.shape[1])
        return LSTEncoderOutput(last_hidden_state=hidden, side_last_hidden_state=side,
                                side_attention_mask=side_mask), attention_mask

    def generate(self, *args, **kwargs):
        return super().generate(*args, **{**kwargs, "use_cache": False})


# ------------------------------------------------------------------------------------------------ initialisation
def fisher_importance(lm: T5ForConditionalGeneration, samples) -> dict[str, torch.Tensor]:
    """F[p] = Σ_samples (∂L/∂p)², L the mean token cross-entropy of one sample (eval mode, batch size 1)."""
    fisher = {n: torch.zeros_like(p) for n, p in lm.named_parameters()}
    was_training = lm.training
    lm.eval()
    for input_ids, target_ids in samples:
        lm.zero_grad(set_to_none=True)
        lm(input_ids=input_ids, labels=target_ids).loss.backward()
        for n, p in lm.named_parameters():
            if p.grad is not None:
                fisher[n] += p.grad.square()
    lm.zero_grad(set_to_none=True)
    lm.train(was_training)
    return fisher


def _keep(n: int, prune: list[int]) -> list[int]:
    return list(set(range(n)) - set(prune))  # CPython set order, as the official select_weights (spec §6)


def _rows_to_prune(importance: torch.Tensor, amount: float) -> list[int]:
    """torch_pruning's L1Strategy: the round(amount·n) rows of smallest L1 norm, ascending."""
    n = len(importance)
    l1 = importance.reshape(n, -1).norm(p=1, dim=1)
    k = max(n - max(n - round(amount * n), 1), 0)
    return torch.sort(torch.argsort(l1)[:k])[0].tolist()


def pruning_order(num_layers: int, num_decoder_layers: int) -> list:
    """The walk of ``pruning_without_residual``: LayerNorms (str) and row-pruned groups (list)."""
    order: list = ["shared.weight"]
    for stack, n in (("encoder", num_layers), ("decoder", num_decoder_layers)):
        subs = ["SelfAttention"] + (["EncDecAttention"] if stack == "decoder" else [])
        for i in range(n):
            p = f"{stack}.block.{i}.layer"
            for j, attn in enumerate(subs):
                order += [f"{p}.{j}.layer_norm.weight", [f"{p}.{j}.{attn}.{x}.weight" for x in "qkv"],
                          [f"{p}.{j}.{attn}.o.weight"]]
            f = len(subs)
            order += [f"{p}.{f}.layer_norm.weight", [f"{p}.{f}.DenseReluDense.wi.weight"],
                      [f"{p}.{f}.DenseReluDense.wo.weight"]]
        order.append(f"{stack}.final_layer_norm.weight")
    return order


def prune_without_residual(state: dict, importance: dict, r: int, num_layers: int, num_decoder_layers: int):
    """``pruning_v2``: keep 1/r of every hidden dim, ranked by the L1 norm of the Fisher (products per group)."""
    amount, pruned = 1 - 1 / r, {}
    prune = _rows_to_prune(importance["shared.weight"].T, amount)
    pruned["shared.weight"] = state["shared.weight"].T[_keep(state["shared.weight"].shape[1], prune)].T
    for item in pruning_order(num_layers, num_decoder_layers)[1:]:
        if isinstance(item, str):  # a LayerNorm follows the previous step's kept entries
            pruned[item] = state[item][_keep(len(state[item]), prune)]
            continue
        cols = _keep(state[item[0]].shape[1], prune)
        weights = [state[k][:, cols] for k in item]
        product = torch.ones_like(weights[0])
        for k in item:
            product = product * importance[k][:, cols]
        prune = _rows_to_prune(product, amount)
        rows = _keep(len(product), prune)
        pruned.update({k: w[rows] for k, w in zip(item, weights)})
    return pruned


def init_side_from_pruned(lm, pruned: dict) -> None:
    """side_block.i ← pruned block.i; final side LN ← pruned final LN; relative bias ← the backbone's own."""
    with torch.no_grad():
        for name in ("encoder", "decoder"):
            stack = getattr(lm, name)
            for key, p in stack.side_block.named_parameters():
                if "relative_attention_bias" in key:
                    p.copy_(stack.block[0].layer[0].SelfAttention.relative_attention_bias.weight)
                else:
                    p.copy_(pruned[f"{name}.block.{key}"])
            stack.final_side_layer_norm.weight.copy_(pruned[f"{name}.final_layer_norm.weight"])


def stock_backbone(model) -> T5ForConditionalGeneration:
    """The plain text T5 the Fisher pass uses: our backbone's weights at the vocabulary before the resize."""
    config = copy.deepcopy(model.lm.config)
    config.vocab_size = min(getattr(model, "base_vocab_size", config.vocab_size), config.vocab_size)
    stock = T5ForConditionalGeneration(config)
    own = {k: v for k, v in model.lm.state_dict().items() if k in stock.state_dict()}
    own = {k: v[: config.vocab_size] if k.endswith(("shared.weight", "embed_tokens.weight", "lm_head.weight"))
           else v for k, v in own.items()}
    stock.load_state_dict(own)
    return stock.to(next(model.parameters()).device)


def fisher_samples(loader, limit: int, pad_id: int):
    """Up to ``limit`` single samples (input ids, target ids) of the training batches, padding stripped."""
    n = 0
    for batch in loader:
        for ids, tgt in zip(batch["input_ids"], batch["target_ids"]):
            if n >= limit:
                return
            yield ids[ids.ne(pad_id)][None], tgt[tgt.ne(-100)][None]
            n += 1


def _compute_fisher(model, lm, train_loader, device: torch.device) -> dict:
    samples = ((i.to(device), t.to(device)) for i, t in
               fisher_samples(train_loader, model.samples_for_fisher, model.config.pad_token_id))
    return fisher_importance(lm, samples)


def init_side_network(model, train_loader, run_dir: Path, save: bool = True, wait=None) -> str | None:
    """LST's fisher-v2 side init at the start of a run. The Fisher is saved in the run folder
    (``lst_fisher.safetensors``) and read back onto the model's device instead of recomputed (resume). No-op for
    other methods.

    Under DDP pass ``wait`` (a barrier every rank calls once): only the rank with ``save`` (rank 0) computes and
    saves a missing Fisher; the others wait for it and read the file, so no rank reads it half-written. A rank that
    finds no file after the wait (no shared disk) computes its own."""
    if getattr(model, "side_init", None) != "fisher-v2":
        return None
    from safetensors.torch import load_file, save_file

    path = Path(run_dir) / FISHER_FILE
    lm = stock_backbone(model)
    device = next(model.parameters()).device
    fisher, how = None, f"read the Fisher importance from {path}"
    if not path.is_file() and (save or wait is None):
        fisher = _compute_fisher(model, lm, train_loader, device)
        how = f"computed the Fisher importance, saved in {path}"
        if save:
            tmp = path.with_name(path.name + ".tmp")
            save_file({k: v.contiguous().cpu() for k, v in fisher.items()}, str(tmp))
            tmp.replace(path)
    if wait is not None:
        wait()
    if fisher is None:
        if path.is_file():
            fisher = load_file(str(path), device=str(device))
        else:
            fisher, how = _compute_fisher(model, lm, train_loader, device), "computed the Fisher importance"
    cfg = lm.config
    state = {k: v.detach() for k, v in lm.state_dict().items()}
    pruned = prune_without_residual(state, fisher, model.side_reduction_factor, cfg.num_layers,
                                    cfg.num_decoder_layers)
    init_side_from_pruned(model.lm, pruned)
    return f"LST side network initialised from the pruned backbone ({how})"
