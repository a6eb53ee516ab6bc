"""``python -m vlpet <command>``:

  train     the multi-task trainer, with the published flag names (``python -m vlpet train --help``)
  demo      the offline demo: synthetic data, tiny BART + VL-PET-large, train / validate / test on CPU
  params    trainable / total parameters of a method (no weights allocated)
  evaluate  re-score a predictions file with the official metrics
  report    runs grouped over seeds: tables (md, csv, latex, json), plots, the paper's numbers beside ours
"""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    from . import demo, evaluate, params, report

    parser = argparse.ArgumentParser(prog="python -m vlpet", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="the multi-task trainer (see python -m vlpet train --help)", add_help=False)
    for name, module, text in (("demo", demo, "offline demo on synthetic data"),
                               ("params", params, "trainable / total parameters of a method"),
                               ("evaluate", evaluate, "score a predictions file with the official metrics"),
                               ("report", report, "tables over seeds from run folders, plots, the paper's rows")):
        p = sub.add_parser(name, help=text, allow_abbrev=False)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # the trainer has its own parser with every official flag
        from .train.main import main as train_main

        return train_main(argv[1:])
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # user mistakes: one clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
