"""One process per state directory, by a lock the kernel drops when it dies.

A second kiosk on the same state directory would void the first one's ticket
in flight at start-up, then both would print. ``flock`` on a file in the
directory is released by the OS however the holder ends (SIGKILL, power cut),
so there is no stale lock to clean up after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another live process holds the lock; ``str()`` says which."""


class DirectoryLock:
    """The lock is on the directory itself, so taking it writes nothing: it works
    on a full disk. The holder's pid goes into ``<name>.pid`` for the message."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.pid_file = directory / f"{name}.pid"
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock now or raise :class:`AlreadyRunning` (never waits)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            try:
                holder = self.pid_file.read_text().strip() or "?"
            except OSError:
                holder = "?"
            raise AlreadyRunning(
                f"another process (pid {holder}) is using {self.directory}"
            ) from None
        with contextlib.suppress(OSError):  # only for the message: a full disk may refuse
            self.pid_file.write_text(f"{os.getpid()}\n")
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
