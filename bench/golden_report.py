"""Max deviations of our model from every golden fixture of the official code, on a device (issue 20 item 9).

Usage: ``VLPET_TEST_DEVICE=cuda python bench/golden_report.py [--fixtures N]`` (default device cpu). One JSON line
per fixture: the max absolute deviation of the encoder output, the logits and the per-token losses, the worst
gradient error as a fraction of the golden test's bound (1e-4 × the tensor's largest reference gradient + 1e-7;
≤ 1 passes), and whether the greedy / beam-5 ids (or the
NLVR2 predictions) equal the official ones. TF32 is off (``tests/golden.py``). ``tests/test_golden.py`` with the
same variable gives the pass/fail at the golden tolerances (1e-5 absolute, 1e-4 relative for gradients, exact ids).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

import torch  # noqa: E402
from golden import DEVICE, Fixture, fixture_names, is_vlpet, task_losses  # noqa: E402
from vlpet.flags.published import UNSUPPORTED  # noqa: E402
from vlpet.losses import token_losses  # noqa: E402


def dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b).abs().max())


def report(name: str) -> dict:
    fx = Fixture(name)
    if [f for f in UNSUPPORTED if f"--{f}" in fx.meta["argv"]] and not is_vlpet(fx.meta):
        return {"fixture": name, "skipped": "method not implemented"}
    model = fx.build()
    ref = fx.outputs
    feats, boxes = fx.vis()
    ids, labels = fx.inputs["input_ids"], fx.inputs["target_ids"]
    out = model(ids, feats, boxes, labels=labels, task=fx.meta["task_for_forward_outputs"])
    row = {"fixture": name, "device": DEVICE}
    if "encoder_last_hidden_state" in ref:
        row["encoder_max_abs"] = dev(out.encoder_last_hidden_state, ref["encoder_last_hidden_state"])
    row["logits_max_abs"] = dev(out.logits, ref["logits"])
    row["token_loss_max_abs"] = dev(token_losses(out.logits, labels).flatten(), ref["loss_per_token"])
    loss = task_losses(out.logits, labels, fx.inputs.get("scores"))[fx.meta["backward_loss"]]
    loss.backward()
    worst = 0.0
    for pname, p in model.named_parameters():
        if p.requires_grad:
            g = fx.reference_grad(model, pname)
            got = p.grad if p.grad is not None else torch.zeros_like(p)
            worst = max(worst, float((got - g).abs().max() / (1e-4 * g.abs().max() + 1e-7)))
    row["grad_err_over_tolerance"] = worst  # the golden test's bound: err ≤ 1e-4·max|ref| + 1e-7 (≤ 1 passes)
    gen = fx.meta["generation"]
    with torch.no_grad():
        if "nlvr_test_pred_ans_id" in gen:
            start = torch.tensor([[model.config.decoder_start_token_id, 0]]).expand(ids.shape[0], 2)
            logits = model(ids, feats, boxes, decoder_input_ids=start, task="nlvr").logits[:, 1]
            pred = (logits[:, gen["nlvr_true_id"]] > logits[:, gen["nlvr_false_id"]]).long()
            row["nlvr_pred_equal"] = pred.tolist() == gen["nlvr_test_pred_ans_id"]
        video = "tvqa" in fx.meta["task_for_forward_outputs"]
        runs = {"greedy_vqa_path": dict(num_beams=1, task="tvqa" if video else "vqa"),
                "beam5_caption_path": dict(num_beams=5, max_length=20, task="tvc" if video else "caption"),
                "qa_predict_path": dict(num_beams=5, task="tvqa")}
        for key, kwargs in runs.items():
            if key in gen:
                row[f"{key}_ids_equal"] = model.generate(ids, feats, boxes, **kwargs).tolist() == gen[key]
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", type=int, default=0, help="only the first N fixtures (0: all)")
    args = p.parse_args(argv)
    names = fixture_names()
    names = names[: args.fixtures] if args.fixtures else names
    worst = {}
    for name in names:
        row = report(name)
        print(json.dumps(row), flush=True)
        for k, v in row.items():
            if isinstance(v, float):
                worst[k] = max(worst.get(k, 0.0), v)
            elif isinstance(v, bool):
                worst[k] = worst.get(k, True) and v
    print(json.dumps({"summary": True, "device": DEVICE, "fixtures": len(names), **worst}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
