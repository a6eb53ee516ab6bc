"""Stop signals of a run: Ctrl-C (SIGINT), SIGTERM (schedulers before preemption, ``kill``) and SIGUSR1 (what SLURM's
``--signal=USR1@T`` sends ahead of a job's end).

During a run the trainer installs handlers for all three (``stop_signals``), whatever dispositions it inherited (a
background job of a non-interactive shell starts with SIGINT ignored): each raises ``Interrupted``, a
``KeyboardInterrupt`` carrying the signal, so the trainer saves the position of the last completed step and exits
with ``EXIT_CODES[signal]`` (128 + the signal number: 130, 143, 138). ``defer_signals`` holds them back inside a
block (an optimizer update, a checkpoint save) and delivers the first one at its end.

Only the first stop signal counts: once it has been raised, later ones (a second SIGTERM from a scheduler, an
impatient Ctrl-C) are absorbed while the trainer saves, prints its message and exits with the first signal's code;
``python -m vlpet`` keeps absorbing them through the interpreter's shutdown (``absorb_stop_signals``).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))
EXIT_CODES = {sig: 128 + int(sig) for sig in STOP_SIGNALS}


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130)


def _absorb(signum, frame):
    """A stop signal after the first: the stop sequence is already under way."""


def _raise(signum, frame):
    if _main_thread():
        absorb_stop_signals(_absorb)  # the first signal decides; the stop sequence must not be cut short
    raise Interrupted(signum)


def absorb_stop_signals(handler=signal.SIG_IGN) -> None:
    """From now on the stop signals are absorbed (main thread only; ``stop_signals`` restores its predecessors)."""
    if not _main_thread():
        return
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):
            pass


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def stop_signals():
    """Inside the block every stop signal raises ``Interrupted``; the previous handlers are restored after it."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def defer_signals():
    """Hold every stop signal arriving inside the block until its end (main thread only), then deliver the first
    to the handler that was in place: a Ctrl-C or SIGTERM cannot cut an update or a checkpoint save in half.

    A held SIGINT with the default disposition raises ``KeyboardInterrupt``; another held signal with the default
    disposition is re-sent to this process; an ignored one is dropped."""
    if not _main_thread():
        yield
        return
    received: list[tuple[int, object]] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda signum, frame: received.append((signum, frame)))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            _deliver(*received[0], previous[received[0][0]])


def _deliver(signum: int, frame, handler) -> None:
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
