"""``python -m vlpet <command>``:

  train     the multi-task trainer, with the published flag names (``python -m vlpet train --help``)
  demo      the offline demo: synthetic data, tiny BART + VL-PET-large, train / validate / test on CPU
  params    trainable / total parameters of a method (no weights allocated)
  evaluate  re-score a predictions file with the official metrics
  prepare   rebuild the datasets tree from the original files: download, convert, check
  extract   CLIP features of an image folder (RN101 grid, .h5) or a video folder (ViT-B/32 frames, .npz)
  predict   answer / caption / judge new inputs with a trained checkpoint
  report    runs grouped over seeds: tables (md, csv, latex, json), plots, the paper's numbers beside ours
  export    a checkpoint as a folder in the Hub's conventions (model card, PET-only weights, peft adapter)
  push      export a checkpoint and upload it to a Hugging Face Hub repo
"""

from __future__ import annotations

import argparse
import sys


from .commands import COMMANDS, module_name, plain


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; the arguments of ``command`` (when it is one of ``COMMANDS``) are added to it."""
    import importlib

    parser = argparse.ArgumentParser(prog="python -m vlpet", description=plain(__doc__), allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, own_parser) in COMMANDS.items():
        if own_parser:
            sub.add_parser(name, help=text, add_help=False)
            continue
        p = sub.add_parser(name, help=text, allow_abbrev=False)
        if name == command:
            module = importlib.import_module(module_name(name))
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and COMMANDS.get(argv[0], ("", False))[1]:  # train, prepare: their own parsers (every official flag)
        import importlib

        return importlib.import_module(module_name(argv[0])).main(argv[1:])
    args = _build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # user mistakes: one clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def _exit(code: int) -> None:
    """Exit with ``code``; after a stop signal (exit 130/143/138) a second one cannot turn the exit into death by
    the signal during the interpreter's shutdown."""
    from .train.interrupts import EXIT_CODES, absorb_stop_signals  # standard library only: no torch

    if code in EXIT_CODES.values():

        absorb_stop_signals()
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
