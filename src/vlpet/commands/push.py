"""``python -m vlpet push RUN_DIR/LAST REPO_ID``: export the checkpoint (``vlpet export``) and upload the folder to
a Hugging Face Hub model repo with ``huggingface_hub`` (token: ``HF_TOKEN`` or ``hf auth login``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder (RUN_DIR/LAST, RUN_DIR/BEST) or a run folder")
    parser.add_argument("repo_id", help="the Hub model repo, owner/name (created when missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")


def run(args: argparse.Namespace) -> int:
    from .. import hub_export
    from ..pet.official import CheckpointError

    if not hub_export.looks_like_repo_id(args.repo_id):
        raise ValueError(f"{args.repo_id}: a Hub repo id is owner/name")
    try:
        url = hub_export.push(Path(args.checkpoint), args.repo_id, private=args.private)
    except CheckpointError as err:
        raise ValueError(str(err)) from None
    except OSError as err:  # network / HTTP errors of huggingface_hub are OSErrors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"upload to {args.repo_id} failed: {first}") from None
    print(url)
    return 0
