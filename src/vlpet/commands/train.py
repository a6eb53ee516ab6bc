"""``python -m vlpet train``: parse and validate the published flags (``vlpet.flags``, torch-free, so ``--help`` and
a mistyped flag answer at once), then import and run the trainer (``vlpet.train``)."""

from __future__ import annotations

import sys

from ..flags.parse import parse


def main(argv: list[str] | None = None) -> int:
    """``python -m vlpet train``: parse and validate (fast), then import and run the trainer."""
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as stop:  # --help (0) or a flag error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    from ..train.main import run

    return run(args)
