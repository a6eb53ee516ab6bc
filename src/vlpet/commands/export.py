"""``python -m vlpet export RUN_DIR/LAST OUT``: the checkpoint as a folder in the Hugging Face Hub's conventions
(library code: ``vlpet.hub_export``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder (RUN_DIR/LAST, RUN_DIR/BEST) or a run folder")
    parser.add_argument("out", help="the folder to write (new or empty): model card, PET-only weights, configs, "
                                    "and for --peft_config runs a peft adapter")


def run(args: argparse.Namespace) -> int:
    from .. import hub_export
    from ..pet.official import CheckpointError

    try:
        out = hub_export.export(Path(args.checkpoint), Path(args.out))
    except CheckpointError as err:
        raise ValueError(str(err)) from None
    print(out)
    return 0
