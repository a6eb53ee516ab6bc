"""HyperFormer baseline (model spec §8): adapters whose weights a hypernetwork generates from a task embedding and
a layer-id embedding.

For layer i: e = LN₈(W₂ ReLU(W₁ [t; ℓ_i] + b₁) + b₂), t ∈ R^512 the task's (raw, trainable) embedding, ℓ_i a
layer-id embedding. For each sublayer (encoder self-attention / FFN; decoder also cross-attention) two generators
give W_down ∈ R^{r×d}, b_down, W_up ∈ R^{d×r}, b_up, and the adapter is x₂ + W_up φ(W_down x₂ + b_down) + b_up.
The task comes from ``VLModel.current_task`` (set by forward / generate). Trainable: task embeddings, the two
hypernetwork controllers, all LayerNorms, the visual embedding. Module names follow the official ones.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.activations import ACT2FN

from ..config import PETConfig
from .gates import build_gate
from .hosts import inject_decoder, inject_encoder
from .init import init_module
from .sublayer import SublayerPET
from .trainable import freeze_all, unfreeze_all_layer_norms, unfreeze_visual_embedding

TASK_DIM, HIDDEN_DIM = 512, 128
_SITES = {"attn": "self_attention", "self": "self_attention", "ffn": "feed_forward", "cross": "cross_attention"}


class SamplerHyperNet(nn.Module):
    """Generates one projection: weight (out, in) for F.linear and bias (out)."""

    def __init__(self, embed_dim: int, out_dim: int, in_dim: int):
        super().__init__()
        self.out_dim, self.in_dim = out_dim, in_dim
        self.weight_generator = nn.Sequential(nn.Linear(embed_dim, out_dim * in_dim))
        self.bias_generator = nn.Sequential(nn.Linear(embed_dim, out_dim))

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight_generator(e).view(self.out_dim, self.in_dim), self.bias_generator(e).view(-1)


class HyperNetController(nn.Module):
    """One per stack: the layer-conditioned task projection and the per-sublayer generators."""

    def __init__(self, d_model: int, down_dim: int, n_layers: int, embed_dim: int, sites: tuple[str, ...]):
        super().__init__()
        self.layer_id_embeddings = nn.Embedding(n_layers, TASK_DIM)
        self.task_hypernet = nn.Module()
        self.task_hypernet.task_embeding_generator = nn.Sequential(  # official spelling, for checkpoint names
            nn.Linear(2 * TASK_DIM, HIDDEN_DIM), nn.ReLU(), nn.Linear(HIDDEN_DIM, embed_dim))
        self.LayerNorm = nn.LayerNorm(embed_dim, eps=1e-6)
        for site in sites:
            setattr(self, f"{site}_down_sampler_hyper_net", SamplerHyperNet(embed_dim, down_dim, d_model))
            setattr(self, f"{site}_up_sampler_hyper_net", SamplerHyperNet(embed_dim, d_model, down_dim))

    def embedding(self, task_embedding: torch.Tensor, layer: int) -> torch.Tensor:
        joint = torch.cat([task_embedding, self.layer_id_embeddings.weight[layer]])
        return self.LayerNorm(self.task_hypernet.task_embeding_generator(joint))


class Hyperformer(nn.Module):
    """Task embeddings plus an encoder and a decoder controller; attached to the VLModel as ``hyperformer``."""

    def __init__(self, model, cfg: PETConfig, down_dim: int):
        super().__init__()
        d = model.config.d_model
        self.task_embeddings = nn.ParameterDict({t: nn.Parameter(torch.randn(TASK_DIM)) for t in cfg.tasks})
        n_enc, n_dec = len(_layers(model.lm.get_encoder())), len(_layers(model.lm.get_decoder()))
        p = cfg.projected_task_embedding_dim
        self.encoder = HyperNetController(d, down_dim, n_enc, p, ("self_attention", "feed_forward"))
        self.decoder = HyperNetController(d, down_dim, n_dec, p, ("self_attention", "feed_forward", "cross_attention"))
        object.__setattr__(self, "_model", model)  # read-only back reference for the current task (not a child)

    def task_embedding(self) -> torch.Tensor:
        task = self._model.current_task
        if task not in self.task_embeddings:
            raise ValueError(f"HyperFormer needs the batch's task (one of {list(self.task_embeddings)}), got {task!r}")
        return self.task_embeddings[task]


class HyperAdapter(nn.Module):
    """The generated adapter of one sublayer (no parameters of its own)."""

    def __init__(self, hyper: Hyperformer, stack: str, layer: int, site: str):
        super().__init__()
        object.__setattr__(self, "_hyper", hyper)
        self.stack, self.layer, self.site = stack, layer, _SITES[site]
        self.act = ACT2FN["gelu_new"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        controller = getattr(self._hyper, self.stack)
        e = controller.embedding(self._hyper.task_embedding(), self.layer)
        w_down, b_down = getattr(controller, f"{self.site}_down_sampler_hyper_net")(e)
        w_up, b_up = getattr(controller, f"{self.site}_up_sampler_hyper_net")(e)
        return F.linear(self.act(F.linear(x, w_down, b_down)), w_up, b_up) + x


def _layers(stack):
    return stack.layers if hasattr(stack, "layers") else stack.block


def apply_hyperformer(model, cfg: PETConfig) -> list[str]:
    from .vl_pet import init_style

    hyper = Hyperformer(model, cfg, model.config.d_model // cfg.reduction_factor)
    init_module(hyper, init_style(model, cfg))  # task embeddings stay N(0, 1), LayerNorm (1, 0)
    model.add_module("hyperformer", hyper)
    def maker(stack: str, sites_per_layer: int):
        calls = iter(range(10**9))

        def make(site: str) -> SublayerPET:
            layer = next(calls) // sites_per_layer
            return SublayerPET(HyperAdapter(hyper, stack, layer, site), build_gate("none", 1, 1), 1.0, site,
                               naming="hyper")
        return make

    names = inject_encoder(model, maker("encoder", 2)) + inject_decoder(model, maker("decoder", 3))
    freeze_all(model)
    hyper.requires_grad_(True)
    unfreeze_all_layer_norms(model)
    if cfg.train_visual_embedding:
        unfreeze_visual_embedding(model)
    return names
