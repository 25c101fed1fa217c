"""sd_notify over ``$NOTIFY_SOCKET``: readiness, status and the watchdog.

The protocol is one datagram of ``KEY=value`` lines to a Unix socket
(sd_notify(3)); a dozen lines of our own, so no compiled libsystemd binding is
needed on the Pi. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("vuoro.notify")


class Notifier:
    """Talks to the service manager that started this process, if any."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self.address = address
        self.watchdog_usec = _own_watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False when nobody listens."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError as exc:  # the manager went away: nothing to tell
            log.debug("sd_notify to %r failed: %s", self.address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def ping_interval_s(self) -> float | None:
        """How often to ping: a third of ``WatchdogSec=``, so one late ping is not fatal."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 3 / 1_000_000


def _own_watchdog_usec(env) -> int | None:
    """``$WATCHDOG_USEC`` if it is meant for this process (``$WATCHDOG_PID``)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return usec if usec > 0 else None
