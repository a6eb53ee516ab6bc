"""The launchers' process starter (``scripts/lib.sh``): ``python -m vlpet.train.launch NPROC PORT FLAG...``, so that
the exit code of a launcher is the trainer's and its one-line message is the last thing printed.

* The flags are checked first (``flags.parse``, torch-free): a bad flag is one line and exit 2, before anything
  starts.
* One process: the trainer replaces this process (``python -m vlpet train FLAG...``; no torchrun in between), so
  its exit codes (0, 2, 3, 74, 130, 143, 138) are the launcher's and a stop signal reaches it directly.
* Several: torchrun (``torch.distributed.run``) in this process. A stop signal to the launcher (SIGTERM, SIGINT,
  SIGUSR1 as well: ``TORCHELASTIC_SIGNALS_TO_HANDLE``) is passed on to every rank, which saves and stops; the
  launcher then exits 128 + the signal number. A failed run exits with rank 0's exit code (a rank killed by a
  signal: 128 + its number), without torchrun's ``ChildFailedError`` traceback; each rank printed its own line.
"""

from __future__ import annotations

import os
import sys

STOP_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def exit_code(failures: dict) -> int:
    """The launcher's exit code from torchrun's failures ``{rank: ProcessFailure}``: rank 0's, else the first
    failure's; a negative code (killed by signal n) becomes 128 + n."""
    if not failures:
        return 1
    failure = failures.get(0) or min(failures.values(), key=lambda f: f.timestamp)
    code = int(failure.exitcode)
    return 128 - code if code < 0 else code or 1


def _first_signal_only(handler):
    """torchrun's stop handler for the first signal only: a second one (e.g. SLURM signalling both the launcher and
    its children) arriving while the workers save and stop must not cut that wait short."""
    import signal

    def first(signum, frame):
        for sig in STOP_SIGNALS.split(","):
            signal.signal(getattr(signal, sig), signal.SIG_IGN)
        handler(signum, frame)

    return first


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m vlpet.train.launch NPROC PORT [trainer flags...]", file=sys.stderr)
        return 2
    nproc, port, flags = int(argv[0]), argv[1], argv[2:]
    from ..flags.parse import parse

    try:
        parse(flags)
    except SystemExit as stop:  # --help (0) or a flag error (2), already printed in one line
        return stop.code if isinstance(stop.code, int) else 2
    if nproc == 1:
        os.execv(sys.executable, [sys.executable, "-m", "vlpet", "train", *flags])
    os.environ.setdefault("TORCHELASTIC_SIGNALS_TO_HANDLE", STOP_SIGNALS)
    from torch.distributed.elastic.multiprocessing import api
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    api._terminate_process_handler = _first_signal_only(api._terminate_process_handler)
    import logging

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the ranks' own lines come last

    args = get_args_parser().parse_args([f"--nproc_per_node={nproc}", f"--master_port={port}", "-m", "vlpet",
                                         "train", *flags])
    try:
        run(args)
    except ChildFailedError as err:
        code = exit_code(err.failures)
        if code > 128:  # killed by a signal: the rank could not say so itself
            import signal

            name = signal.Signals(code - 128).name if code - 128 in signal.Signals._value2member_map_ else code
            print(f"error: a training process was killed by {name} (exit {code})", file=sys.stderr)
        return code
    except SignalException as stop:  # the ranks got the signal and have stopped (or were killed after a timeout)
        from .interrupts import absorb_stop_signals

        absorb_stop_signals()
        return 128 + int(stop.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
