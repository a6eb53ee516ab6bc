"""Visual tokens: the 49→36 grid max-pool and the visual embedding (model spec §7).

e = LN_f(W_f f + b_f) + LN_p(W_p [box, area] + b_p) + E_img[img_id] + E_tok[V_tok − 1 − obj_id]
where E_tok is the (frozen) shared token embedding: object k uses the row of <vis_extra_id_k>.
BART uses LayerNorm, T5 its RMS ``T5LayerNorm`` (weight only).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class VisualEmbedding(nn.Module):
    def __init__(self, feat_dim: int, d_model: int, norm: type[nn.Module], n_images: int = 2, pos_dim: int = 4,
                 **norm_kwargs):
        super().__init__()
        self.feat_embedding = nn.Sequential(nn.Linear(feat_dim, d_model), norm(d_model, **norm_kwargs))
        self.absolute_vis_pos_embedding = nn.Sequential(nn.Linear(pos_dim + 1, d_model), norm(d_model, **norm_kwargs))
        self.img_order_embedding = nn.Embedding(n_images, d_model)

    def forward(self, feats: torch.Tensor, boxes: torch.Tensor, img_order_ids: torch.Tensor,
                obj_order_ids: torch.Tensor, token_embedding: nn.Embedding) -> torch.Tensor:
        """feats (B, V, F), boxes (B, V, 4) as (x1, x2, y1, y2), ids (B or 1, V)."""
        area = ((boxes[..., 3] - boxes[..., 2]) * (boxes[..., 1] - boxes[..., 0])).unsqueeze(-1)
        pos = self.absolute_vis_pos_embedding(torch.cat([boxes, area], dim=-1))
        obj_rows = token_embedding.num_embeddings - 1 - obj_order_ids
        return (self.feat_embedding(feats) + pos + self.img_order_embedding(img_order_ids)
                + token_embedding(obj_rows))


def grid_max_pool(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """Adaptive max-pool V tokens laid out as a √V×√V grid to n_out = s×s tokens: (B, V, F) → (B, n_out, F)."""
    b, v, f = x.shape
    # int(v): under torch.compile a symbolic size is specialised here (a guard on the token count, 49) instead of
    # breaking the graph at math.isqrt.
    side, out_side = math.isqrt(int(v)), math.isqrt(int(n_out))
    if side * side != v or out_side * out_side != n_out:
        raise ValueError(f"--downsample needs square token counts, got {v} → {n_out}")
    grid = x.transpose(1, 2).reshape(b, f, side, side)
    return F.adaptive_max_pool2d(grid, out_side).reshape(b, f, n_out).transpose(1, 2)


def visual_inputs(vis_feats: torch.Tensor, boxes: torch.Tensor, n_boxes: int, downsample: bool):
    """Turn loader features into visual-token inputs: (feats, boxes, img_order_ids, obj_order_ids).

    Single image: feats (B, V, F) → pooled to n_boxes tokens; img id 0, obj ids 0..n−1.
    NLVR2: feats (B, 2, V, F) → each image pooled separately, concatenated (72 tokens); img ids 0/1,
    obj ids 0..n−1 per image. Boxes keep their first n rows per image (model spec §7.2).
    """
    two_images = vis_feats.dim() == 4
    feats = vis_feats.flatten(0, 1) if two_images else vis_feats
    box = boxes.flatten(0, 1) if two_images else boxes
    if downsample and feats.shape[1] != n_boxes:
        feats = grid_max_pool(feats, n_boxes)
    box = box[:, : feats.shape[1]]
    n = feats.shape[1]
    obj = torch.arange(n, device=feats.device)
    if two_images:
        b = vis_feats.shape[0]
        feats, box = feats.reshape(b, 2 * n, -1), box.reshape(b, 2 * n, 4)
        img = torch.arange(2, device=feats.device).repeat_interleave(n)[None]
        obj = obj.repeat(2)
    else:
        img = torch.zeros(n, dtype=torch.long, device=feats.device)[None]
    return feats, box, img, obj[None]
