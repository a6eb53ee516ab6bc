"""``python -m vlpet <command>``: params (Params %), evaluate (re-score a predictions file), demo (offline run)."""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    from . import params

    parser = argparse.ArgumentParser(prog="python -m vlpet", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("params", help="trainable / total parameters of a method (no weights allocated)",
                       allow_abbrev=False)
    params.add_arguments(p)
    p.set_defaults(run=params.run)
    try:
        from . import evaluate
    except ImportError:  # the evaluator is optional at this stage
        evaluate = None
    if evaluate is not None and hasattr(evaluate, "add_arguments"):
        e = sub.add_parser("evaluate", help="score a predictions file with the official metrics", allow_abbrev=False)
        evaluate.add_arguments(e)
        e.set_defaults(run=evaluate.run)
    from . import demo
    d = sub.add_parser("demo", help="offline demo: synthetic data, tiny BART + VL-PET-large, train/validate/test on CPU",
                       allow_abbrev=False)
    demo.add_arguments(d)
    d.set_defaults(run=demo.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # user mistakes: one clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
