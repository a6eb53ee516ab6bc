"""HFAdamW follows the transformers-4.2.1 AdamW rule; the official weight-decay groups; the linear schedule."""

import math

import torch

from vlpet.train.optim import HFAdamW, linear_warmup_schedule, param_groups


def test_hf_adamw_two_steps_match_formula():
    torch.manual_seed(0)
    p0 = torch.randn(5)
    grads = [torch.randn(5), torch.randn(5)]
    lr, (b1, b2), eps, wd = 0.1, (0.9, 0.999), 1e-6, 0.01
    p = torch.nn.Parameter(p0.clone())
    opt = HFAdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    ref, m, v = p0.clone().double(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.double()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        ref = ref - step * m / (v.sqrt() + eps)   # eps outside the bias correction
        ref = ref - lr * wd * ref                 # decoupled decay after the Adam update
    torch.testing.assert_close(p.detach().double(), ref, rtol=1e-6, atol=1e-7)


def test_hf_adamw_differs_from_torch_adamw_and_skips_gradless():
    p = torch.nn.Parameter(torch.ones(3))
    q = torch.nn.Parameter(torch.ones(3))
    opt = HFAdamW([p, q], lr=0.1, eps=1e-2, weight_decay=0.5)
    p.grad = torch.full((3,), 1e-3)
    opt.step()
    torch_p = torch.nn.Parameter(torch.ones(3))
    torch_opt = torch.optim.AdamW([torch_p], lr=0.1, eps=1e-2, weight_decay=0.5)
    torch_p.grad = torch.full((3,), 1e-3)
    torch_opt.step()
    assert not torch.allclose(p, torch_p)
    assert torch.equal(q.detach(), torch.ones(3))  # no grad: no update, no decay


def test_param_groups_and_schedule():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    model[0].bias.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    # "LayerNorm.weight" never matches module names like "1.weight": LayerNorm weights are decayed, as officially
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[1].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[1].bias)}  # frozen bias left out
    opt = HFAdamW(model.parameters(), lr=1.0)
    sched = linear_warmup_schedule(opt, total_steps=20, warmup_ratio=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:3] == [0.0, 0.5, 1.0]
    assert math.isclose(lrs[-1], 1 / 18) and sched.get_last_lr()[0] == 0.0


def test_nan_loss_names_step_and_task():
    import pytest

    from vlpet.train.loop import NonFiniteLossError, train_epoch

    class NaNModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input_ids, vis_feats, boxes, labels=None, task=None):
            logits = torch.full((*labels.shape, 5), float("nan")) * self.w
            return type("Out", (), {"logits": logits})()

    batch = {"task": "gqa", "input_ids": torch.ones(2, 3, dtype=torch.long), "vis_feats": torch.zeros(2, 49, 8),
             "boxes": torch.zeros(2, 49, 4), "target_ids": torch.ones(2, 2, dtype=torch.long)}
    model = NaNModel()
    with pytest.raises(NonFiniteLossError, match=r"step 7 .*task gqa"):
        train_epoch(model, [batch], HFAdamW(model.parameters()), None, 5.0, epoch=0, step=7, show=False)
