"""VL-BART / VL-T5: a stock HF seq2seq model fed with [text; visual] encoder tokens (model spec §7).

The encoder input is built here from the stock modules (no forked modeling file):
  BART: t = LN_emb(E_tok(ids) + P(0..L−1)); h = dropout([t; vis]); visual tokens get no position and no LN_emb.
        mBART (pre-LN) is the same, with its √d-scaled token embedding and its final encoder LayerNorm after the
        last layer (both stock modules; the object-order rows go through the same scaled embedding).
  T5:   h = dropout([E_tok(ids); vis]); relative position bias only on the text×text block, zero elsewhere.
One concatenated mask (text padding masked, visual tokens always attended) serves the encoder self-attention and
the decoder cross-attention. The result is handed to the stock model as ``encoder_outputs``.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.bart.modeling_bart import shift_tokens_right

from .beam_cache import can_group, cross_attention_cache, grouped_cross_attention
from .hf_compat import CACHE_KWARG, CACHE_NAMES
from .visual import VisualEmbedding, visual_inputs


@dataclass
class VLOutput:
    logits: torch.Tensor
    encoder_last_hidden_state: torch.Tensor
    encoder_attention_mask: torch.Tensor
    decoder_input_ids: torch.Tensor


class VLModel(nn.Module):
    """``lm`` is the stock ``BartForConditionalGeneration`` / ``MBartForConditionalGeneration`` (kind "bart") or
    ``T5ForConditionalGeneration`` (kind "t5", v1.0 or v1.1 / Flan-T5)."""

    def __init__(self, lm: nn.Module, kind: str, visual_embedding: VisualEmbedding, n_boxes: int = 36,
                 downsample: bool = True, generation_defaults: dict | None = None):
        super().__init__()
        if kind not in ("bart", "t5"):
            raise ValueError(f"unknown backbone kind {kind!r}")
        self.lm = lm
        self.kind = kind
        self.visual_embedding = visual_embedding
        self.n_boxes = n_boxes
        self.downsample = downsample
        self.generation_defaults = dict(generation_defaults or {})
        # Hook point for methods that prepend learned encoder tokens (prompt tuning): a module called as
        # prefix(batch_size, task) -> (B, P, d), inserted before the text (after BART's positions).
        self.encoder_prefix: nn.Module | None = None
        # The task of the batch being processed, set by encode/forward/generate (or, under --compile, by the caller
        # outside the compiled graph, so that no task string is guarded in it); task-conditioned PET modules
        # (HyperFormer) read it.
        self.current_task: str | None = None
        # Flat (B·T) indices of the target positions whose logits ``forward`` computes (``target_index``); read by
        # the LM head's pre-hook, set only for the duration of one forward.
        self._logit_rows: torch.Tensor | None = None
        head = lm.get_output_embeddings()
        if head is not None:
            head.register_forward_pre_hook(self._select_logit_rows)

    @property
    def config(self):
        return self.lm.config

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.lm.get_input_embeddings()

    # ----------------------------------------------------------------------------------------------- encoder
    def encode(self, input_ids: torch.Tensor, vis_feats: torch.Tensor, boxes: torch.Tensor,
               attention_mask: torch.Tensor | None = None, task: str | None = None):
        """Return (encoder hidden states (B, P+L+V, d), the concatenated mask (B, P+L+V))."""
        attention_mask, vis = self.begin_encode(input_ids, vis_feats, boxes, attention_mask, task)
        encoder = self.lm.get_encoder()
        text = self._embed_text(encoder, input_ids)
        if self.encoder_prefix is not None:
            prefix = self.encoder_prefix(input_ids.shape[0], task if task is not None else self.current_task)
            text = torch.cat([prefix, text], dim=1)
            attention_mask = torch.cat([attention_mask.new_ones(prefix.shape[:2]), attention_mask], dim=1)
        if self.kind == "bart":
            text = encoder.layernorm_embedding(text)
        mask = torch.cat([attention_mask, attention_mask.new_ones(vis.shape[:2])], dim=1)
        hidden = torch.cat([text, vis.to(text.dtype)], dim=1)
        run = self._run_bart_encoder if self.kind == "bart" else self._run_t5_encoder
        return run(encoder, hidden, mask, text.shape[1]), mask

    def begin_encode(self, input_ids, vis_feats, boxes, attention_mask=None, task=None):
        """Record the task (None keeps the one set by the caller); return (the text mask, built from padding if not
        given, the visual tokens (B, V, d))."""
        if task is not None:
            self.current_task = task
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id).long()
        feats, box, img_ids, obj_ids = visual_inputs(vis_feats, boxes, self.n_boxes, self.downsample)
        return attention_mask, self.visual_embedding(feats, box, img_ids, obj_ids, self.token_embedding)

    def _embed_text(self, encoder, input_ids):
        emb = encoder.embed_tokens(input_ids)
        return emb + encoder.embed_positions(input_ids) if self.kind == "bart" else emb

    def _run_bart_encoder(self, encoder, hidden, mask, text_len):
        hidden = F.dropout(hidden, p=encoder.dropout, training=self.training)
        mask4 = full_mask(encoder.config, hidden, mask)
        for layer in encoder.layers:
            hidden = layer(hidden, mask4)
        final_norm = getattr(encoder, "layer_norm", None)  # mBART's final encoder LayerNorm; BART has none
        return final_norm(hidden) if final_norm is not None else hidden

    def _run_t5_encoder(self, encoder, hidden, mask, text_len):
        hidden = encoder.dropout(hidden)
        n = hidden.shape[1]
        bias = encoder.block[0].layer[0].SelfAttention.compute_bias(text_len, text_len, device=hidden.device)
        bias = F.pad(bias, (0, n - text_len, 0, n - text_len))
        mask4 = full_mask(encoder.config, hidden, mask)
        for block in encoder.block:
            hidden = block(hidden, mask4, bias)[0]
        return encoder.dropout(encoder.final_layer_norm(hidden))

    # ----------------------------------------------------------------------------------------------- decoder
    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing decoder inputs from labels (−100 becomes pad), as the stock models do."""
        if self.kind == "t5":
            return self.lm._shift_right(labels)
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(self, input_ids: torch.Tensor, vis_feats: torch.Tensor, boxes: torch.Tensor,
                labels: torch.Tensor | None = None, decoder_input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, task: str | None = None,
                target_index: torch.Tensor | None = None) -> VLOutput:
        """Teacher-forced logits (B, T, vocab); with ``target_index`` (flat indices into B·T, e.g. of the labels that
        are not −100) only those rows go through the LM head and ``logits`` is (len(target_index), vocab): the same
        values, without the LM-head work and logits memory of the padded target positions (training)."""
        hidden, mask = self.encode(input_ids, vis_feats, boxes, attention_mask, task)  # sets current_task
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("forward needs labels or decoder_input_ids")
            decoder_input_ids = self.shift_right(labels)
        encoder_outputs = _encoder_outputs(hidden)
        cross = mask
        if mask.device.type != "cpu":  # a ready 4-D mask: the stock decoder then skips its padding_mask.all() sync
            cross = full_mask(self.config, encoder_outputs.last_hidden_state, mask,
                              queries=decoder_input_ids.shape[1])
        self._logit_rows = target_index
        try:
            out = self.lm(encoder_outputs=encoder_outputs, attention_mask=cross, decoder_input_ids=decoder_input_ids,
                          use_cache=False)
        finally:
            self._logit_rows = None
        logits = out.logits
        if target_index is not None and logits.dim() == 3:  # an LM head replaced after __init__ (no pre-hook on it)
            logits = logits.flatten(0, 1).index_select(0, target_index)
        return VLOutput(logits, encoder_outputs.last_hidden_state, mask, decoder_input_ids)

    def _select_logit_rows(self, _head, args):
        """LM-head pre-hook: (B, T, d) → (N, d), the rows of ``target_index`` (nothing without one)."""
        if self._logit_rows is None:
            return None
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, self._logit_rows),)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, vis_feats: torch.Tensor, boxes: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, task: str | None = None, **generate_kwargs):
        """Decode with the official effective settings (pipeline spec §5.1) unless overridden.

        Defaults: max_length 20 (decoder tokens incl. the start token), the backbone's n-gram blocking and
        early stopping; BART forces EOS at the last step in beam search only, as transformers 4.2.1 did.
        Beam search starts from a cache holding the cross-attention keys/values computed once per image
        (``beam_cache``).
        """
        hidden, mask = self.encode(input_ids, vis_feats, boxes, attention_mask, task)
        kwargs = dict(max_length=20, num_beams=1, do_sample=False, length_penalty=1.0, min_length=0)
        kwargs.update(self.generation_defaults)
        kwargs.update(generate_kwargs)
        if self.kind == "bart" and kwargs["num_beams"] > 1:
            kwargs.setdefault("forced_eos_token_id", self.config.eos_token_id)
        if kwargs["num_beams"] == 1:  # early stopping only concerns beam search (and greedy warns about it)
            kwargs.pop("early_stopping", None)
        grouped = nullcontext()
        if "cache" in kwargs and CACHE_KWARG != "cache":  # a caller's cache under this release's name
            kwargs[CACHE_KWARG] = kwargs.pop("cache")
        if kwargs["num_beams"] > 1 and kwargs.get("use_cache", True) and not set(CACHE_NAMES) & set(kwargs):
            group = can_group(self.lm) and not kwargs.get("output_attentions")
            kwargs[CACHE_KWARG] = cross_attention_cache(self.lm, self.kind, hidden, kwargs["num_beams"], grouped=group)
            grouped = grouped_cross_attention(self.lm, self.kind) if group else grouped
        # generate() expands encoder_outputs in place for beams: always hand it a fresh object.
        with grouped:
            return self.lm.generate(encoder_outputs=_encoder_outputs(hidden), attention_mask=mask,
                                    decoder_start_token_id=self.config.decoder_start_token_id,
                                    eos_token_id=self.config.eos_token_id, pad_token_id=self.config.pad_token_id,
                                    **kwargs)


def full_mask(config, embeds: torch.Tensor, mask: torch.Tensor, queries: int | None = None):
    """The 4-D attention mask of a 2-D padding mask (``create_bidirectional_mask``). On CPU it is built exactly as
    the stock models build it (``None`` when nothing is padded); elsewhere it is always materialised, so that
    building it never reads the mask on the host (``padding_mask.all()``, one device sync per call). ``queries``:
    the query length when it differs from ``embeds``' (cross-attention; then ``embeds`` are the keys)."""
    skip = embeds.device.type == "cpu"
    if queries is None:
        return create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=mask,
                                         allow_is_bidirectional_skip=skip)
    shape = embeds[:, :1].expand(-1, queries, -1)  # only its shape and device are read
    return create_bidirectional_mask(config=config, inputs_embeds=shape, attention_mask=mask,
                                     encoder_hidden_states=embeds, allow_is_bidirectional_skip=skip)


def _encoder_outputs(hidden) -> BaseModelOutput:
    """``encode``'s hidden states as the stock models' ``encoder_outputs`` (a method may return its own output)."""
    return hidden if isinstance(hidden, BaseModelOutput) else BaseModelOutput(last_hidden_state=hidden)
