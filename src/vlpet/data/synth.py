"""The published command line ``python -m vlpet.data.synth ...`` (before the generators moved to ``vlpet.synth``).

Nothing here is read by a loader: the synthetic generators live in ``vlpet.synth`` (``python -m vlpet.synth``, same
flags); this module only keeps the old command line working.
"""

if __name__ == "__main__":
    from ..synth.__main__ import main

    raise SystemExit(main())
