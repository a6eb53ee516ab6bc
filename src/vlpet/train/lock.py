"""One run per folder: an exclusive ``fcntl`` lock on ``<run_dir>/.lock``, held for the run's life.

The lock file holds the holder's pid; the operating system releases the lock when the holder exits (even on
SIGKILL), so a stale file never blocks a later run. A second process aimed at the same folder is refused at once
with one line naming the holder.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run folder."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunLockedError(f"another run (pid {holder}) is using {self.path.parent}; wait for it to end "
                                     "or choose another --output") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None
