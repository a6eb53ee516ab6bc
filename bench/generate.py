"""Generation benchmark: median wall seconds of one validation generation call (max_length 20) for one batch.

Usage: ``python bench/generate.py --backbone {bart-base,t5-base} --method M [--task caption|vqa|gqa|fixed] [--bf16]
[--steps N] [--warmup W] [--batch N] [--threads T] [--device auto|cpu|cuda] [--num-beams B] [--max-length 20]``.
Prints ONE JSON line.

Same model and options as ``bench/train_step.py`` (see its docstring), in eval mode, at the trainer's evaluation
shape of ``--task`` (``bench/shapes.py``): the per-task batch of the published ``--valid_batch_size`` (BART: caption
416, VQA 500, GQA 833; T5: 250 / 300 / 500; on CPU 8 unless ``--batch``) and the task's decoding: COCO captions
beam 5 (the default task), VQA and GQA greedy (``--num-beams`` overrides). ``--task fixed`` is the earlier shape (batch 8 × 20 text tokens, beam 5).
Each timed repetition is one ``model.generate(...)`` call (encoder included) with the backbone's generation defaults
(BART: no_repeat_ngram_size 3, early stopping, forced EOS). With random weights the beams rarely end early, so every
call decodes the full 20 tokens; ``out_len`` reports the length produced.

Glibc allocator: as in ``bench/train_step.py``, the script sets ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736`` and re-executes itself once when they are missing (``--no-malloc-env``: don't).

Output keys: those of train_step.py with ``generate_s_*`` instead of ``step_s_*``, plus num_beams, max_length,
out_len; ``samples_per_s`` is batch / median generate seconds. ``--per-beam-cross-kv`` times stock ``generate``, which
projects the cross-attention keys/values once per beam instead of once per image (``vlpet.models.beam_cache``).
"""

from __future__ import annotations

import os
import sys

# Duplicated from train_step.ensure_malloc_env, which cannot be imported before torch is.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
_REEXEC_MARK = "VLPET_BENCH_REEXEC"

if __name__ == "__main__" and "--no-malloc-env" not in sys.argv and not os.environ.get(_REEXEC_MARK):
    _missing = {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
    if _missing:
        os.environ.update(_missing)
        os.environ[_REEXEC_MARK] = "1"
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

import json  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from shapes import describe  # noqa: E402
from train_step import autocast, make_parser, parse, report, setup, timed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.split("\n")[0])
    parser.add_argument("--num-beams", type=int, default=None, help="default: the task's (caption 5, VQA/GQA 1)")
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--per-beam-cross-kv", action="store_true",
                        help="stock generate: cross-attention keys/values projected for every beam (for comparison)")
    parser.set_defaults(task="caption")
    args = parse(parser, argv)
    if args.task == "nlvr":
        parser.error("NLVR2 is evaluated with one forward, not generation (bench/run_time.py times it)")
    if args.num_beams is None:
        args.num_beams = 1 if args.task in ("vqa", "gqa") else 5
    model, batch, device = setup(args)
    model.eval()
    last = {}
    stock = {"cache": None} if args.per_beam_cross_kv else {}  # an explicit cache argument: the stock path

    def run():
        with torch.inference_mode(), autocast(args, device):
            last["out"] = model.generate(batch["input_ids"], batch["vis_feats"], batch["boxes"],
                                         num_beams=args.num_beams, max_length=args.max_length, **stock)

    times = timed(run, args.steps, args.warmup, device)
    out = report("generate", args, model, device, times, num_beams=args.num_beams, max_length=args.max_length,
                 out_len=int(last["out"].shape[1]), shape={**describe(batch), "task": args.task})
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
