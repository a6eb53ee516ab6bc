"""The published command line ``python -m vlpet.data.synth ...`` (before the generators moved to ``vlpet.synth``).

Nothing here is read by a loader: the synthetic generators live in ``vlpet.synth`` (``python -m vlpet.synth``, same
flags); this module only keeps the old command line working.
"""


def main(argv: list[str] | None = None) -> int:
    from ..synth.__main__ import main as synth_main  # imported here: data/ never depends on synth/ otherwise

    return synth_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
