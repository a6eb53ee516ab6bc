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


def _at_targets(logits: torch.Tensor, target_index: torch.Tensor | None) -> torch.Tensor:
    """As ``VLModel.forward``: with ``target_index`` only the rows of the loss-carrying targets, (N, vocab)."""
    return logits if target_index is None else logits.reshape(-1, logits.shape[-1]).index_select(0, target_index)


def test_nan_loss_names_step_and_task():
    import pytest

    from vlpet.train.loop import NonFiniteLossError, train_epoch

    class NaNModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input_ids, vis_feats, boxes, labels=None, task=None, target_index=None):
            logits = torch.full((*labels.shape, 5), float("nan")) * self.w
            return type("Out", (), {"logits": _at_targets(logits, target_index)})()

    batch = {"task": "gqa", "input_ids": torch.ones(2, 3, dtype=torch.long), "vis_feats": torch.zeros(2, 49, 8),
             "boxes": torch.zeros(2, 49, 4), "target_ids": torch.ones(2, 2, dtype=torch.long)}
    model = NaNModel()
    with pytest.raises(NonFiniteLossError, match=r"step 7 .*task gqa"):
        train_epoch(model, [batch], HFAdamW(model.parameters()), None, 5.0, epoch=0, step=7, show=False)


def test_foreach_update_is_bit_equal_to_the_loop_over_many_steps():
    """The multi-tensor path against the per-parameter loop: exact equality of parameters and moments after 60
    steps over two decay groups, tensors of several shapes, a parameter that has no gradient on some steps (its
    own step count) and the linear schedule changing the learning rate every step."""
    torch.manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,), (33,)]
    init = [torch.randn(s) for s in shapes]

    def build(foreach):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        groups = [{"params": params[:3], "weight_decay": 0.01}, {"params": params[3:], "weight_decay": 0.0}]
        opt = HFAdamW(groups, lr=1e-2, eps=1e-6, foreach=foreach)
        return params, opt, linear_warmup_schedule(opt, total_steps=60, warmup_ratio=0.1)

    runs = [build(True), build(False)]
    gen = torch.Generator().manual_seed(1)
    for step in range(60):
        grads = [torch.randn(s, generator=gen) * 10 ** torch.randint(-4, 2, (), generator=gen).item()
                 for s in shapes]
        for params, opt, sched in runs:
            for i, (p, g) in enumerate(zip(params, grads)):
                p.grad = None if (i == 2 and step % 3 == 0) else g.clone()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    (fe, fe_opt, _), (lo, lo_opt, _) = runs
    for a, b in zip(fe, lo):
        assert torch.equal(a, b)
        sa, sb = fe_opt.state[a], lo_opt.state[b]
        assert sa["step"] == sb["step"]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert fe_opt.state[fe[2]]["step"] == 40 and fe_opt.state[fe[0]]["step"] == 60
    assert not torch.equal(fe[0], init[0])


def test_nan_check_every_n_steps_names_the_first_bad_step():
    """With nan_check_every=4 the losses are checked when the step count reaches a multiple of 4 (before the
    updates of global steps 11 and 15): a NaN at the third batch (global step 12) is found at the second check and
    named; finite runs give the same mean loss as N=1."""
    import pytest

    from vlpet.train.loop import NonFiniteLossError, train_epoch

    class Model(torch.nn.Module):
        def __init__(self, bad_call):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.calls, self.bad_call = 0, bad_call

        def forward(self, input_ids, vis_feats, boxes, labels=None, task=None, target_index=None):
            self.calls += 1
            scale = float("nan") if self.calls == self.bad_call else float(self.calls)
            logits = torch.arange(5.0).expand(*labels.shape, 5) * self.w * scale
            return type("Out", (), {"logits": _at_targets(logits, target_index)})()

    batch = {"task": "gqa", "input_ids": torch.ones(2, 3, dtype=torch.long), "vis_feats": torch.zeros(2, 49, 8),
             "boxes": torch.zeros(2, 49, 4), "target_ids": torch.ones(2, 2, dtype=torch.long)}
    model = Model(bad_call=3)
    with pytest.raises(NonFiniteLossError, match=r"step 12 .*task gqa"):
        train_epoch(model, [batch] * 8, HFAdamW(model.parameters()), None, 5.0, step=10, show=False,
                    nan_check_every=4)
    assert model.calls == 6  # steps 10..15 ran; the check before step 15's update stopped it
    outs = []
    for every in (1, 3):
        model = Model(bad_call=0)
        outs.append(train_epoch(model, [batch] * 5, HFAdamW(model.parameters()), None, 5.0, show=False,
                                nan_check_every=every))
    assert outs[0] == outs[1]
