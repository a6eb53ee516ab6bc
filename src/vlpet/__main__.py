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


# subcommand → (module with add_arguments / run, help); only the chosen one is imported (torch is heavy)
COMMANDS = {
    "demo": ("vlpet.demo", "offline demo on synthetic data"),
    "params": ("vlpet.params", "trainable / total parameters of a method"),
    "evaluate": ("vlpet.evaluate", "score a predictions file with the official metrics"),
    "extract": ("vlpet.features.cli", "CLIP features of images (RN101 grid) or videos (ViT-B/32)"),
    "predict": ("vlpet.predict", "predict new inputs with a trained checkpoint"),
    "report": ("vlpet.report", "tables over seeds from run folders, plots, the paper's rows"),
    "export": ("vlpet.commands.export", "a checkpoint as a Hub folder: model card, PET-only weights, peft adapter"),
    "push": ("vlpet.commands.push", "export a checkpoint and upload it to a Hugging Face Hub repo"),
}


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; the arguments of ``command`` (when it is one of ``COMMANDS``) are added to it."""
    import importlib

    parser = argparse.ArgumentParser(prog="python -m vlpet", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="the multi-task trainer (see python -m vlpet train --help)", add_help=False)
    sub.add_parser("prepare", help="rebuild the datasets tree from the original files", add_help=False)
    for name, (module_name, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, allow_abbrev=False)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # the trainer has its own parser with every official flag
        from .train.cli import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["prepare"]:  # data preparation imports no model code
        from .prepare.cli import main as prepare_main

        return prepare_main(argv[1:])
    args = _build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # user mistakes: one clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
