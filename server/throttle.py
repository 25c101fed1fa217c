"""Leaky buckets of failures (wrong passwords, wrong pairing codes) and the
bounded pool that checks passwords.

A bucket holds a number of recent failures for one key (an address, an
account, the whole server) that leaks away at a steady rate: failures are
forgotten over time instead of adding up for ever, and a key that keeps
failing keeps its bucket full, so it gets one more try per leak period. The
buckets live in the server DB (table ``throttle``): a restart forgets nothing.

Reading a bucket takes no lock; adding to one is a short write, never made
while a password is being hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # storage imports this module
    from server.storage.database import Tx

T = TypeVar("T")

#: rows untouched this long are deleted: longer than any bucket here takes to
#: empty (a login bucket at its cap, 10 failures at 60 s each, takes 10 minutes)
PRUNE_AFTER_S = 3600
#: how much less CPU a password check gets than the rest of the server
CHECK_NICENESS = 10


@dataclass(frozen=True)
class Bucket:
    """How many failures a kind of key may hold, and how fast they leak away."""

    prefix: str
    capacity: float  # failures held before the key must wait
    leak_s: float  # seconds for one failure to be forgotten

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"


def address_key(address: str) -> str:
    """The source an attacker cannot cheaply multiply: an IPv4 address, or the
    /64 an IPv6 host is given (it owns every address in it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def level(db: Tx, bucket: Bucket, name: str, at: float | None = None) -> float:
    """The failures ``name`` holds now, after what has leaked away."""
    row = db.execute(
        "SELECT level, updated_at FROM throttle WHERE key = ?", [bucket.key(name)]
    ).fetchone()
    if row is None:
        return 0.0
    at = time.time() if at is None else at
    return max(0.0, row[0] - max(0.0, at - row[1]) / bucket.leak_s)


def wait_s(held: float, bucket: Bucket, room: float = 1.0) -> int:
    """Whole seconds until ``held`` failures have leaked down to leave ``room``
    below the bucket's capacity (0: there is room now)."""
    excess = held - (bucket.capacity - room)
    return 0 if excess <= 0 else max(1, math.ceil(excess * bucket.leak_s))


def add(db: Tx, bucket: Bucket, name: str, at: float | None = None, cap: float = 0) -> float:
    """One more failure for ``name`` (inside the caller's write transaction);
    the level now. ``cap`` (default twice the capacity) bounds how long a key
    that failed in a burst waits."""
    at = time.time() if at is None else at
    held = level(db, bucket, name, at) + 1
    held = min(held, cap or 2 * bucket.capacity)
    db.execute(
        "INSERT INTO throttle (key, level, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET level = excluded.level, updated_at = excluded.updated_at",
        [bucket.key(name), held, at],
    )
    return held


def prune(db: Tx, at: float | None = None) -> None:
    """Forget keys that have had no failure for an hour (their buckets are empty)."""
    at = time.time() if at is None else at
    db.execute("DELETE FROM throttle WHERE updated_at < ?", [at - PRUNE_AFTER_S])


class Busy(Exception):
    """Too many password checks are waiting; try again after ``seconds``."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"the server is busy; try again in {seconds} s")
        self.seconds = seconds


class PasswordChecks:
    """At most half the cores' worth of Argon2 checks at once, in threads of their own.

    Argon2 is slow on purpose (tens to hundreds of ms, 64 MiB each): run in the
    web server's shared thread pool, a flood of logins would take every thread
    the kiosks' calls need. Here a flood only lengthens this pool's line, and
    a line longer than ``line`` is refused at once (the caller answers 503
    with Retry-After) instead of holding sockets and memory. Addresses with
    recent failures may fill only half the line, so staff at a clean address
    still get in while an attacker keeps it busy. The pool's size also caps the
    hashes per second the whole server spends on logins.
    """

    def __init__(self, workers: int | None = None, line: int | None = None) -> None:
        # half the cores: the other half keeps serving the kiosks and the phones
        self.workers = workers or max(1, min(4, (os.cpu_count() or 1) // 2))
        self.line = line or 8 * self.workers
        self._pool: ThreadPoolExecutor | None = None
        self._in_line = 0  # touched on the event loop only

    async def run(self, check: Callable[..., T], *args: object, clean: bool = True) -> T:
        """``check(*args)`` in the pool; :class:`Busy` when the line is full."""
        room = self.line if clean else self.line // 2
        if self._in_line >= room:
            raise Busy(max(1, math.ceil(self._in_line / self.workers)))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.workers, thread_name_prefix="password-check", initializer=_yield_the_cpu
            )
        self._in_line += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(check, *args))
        finally:
            self._in_line -= 1


def _yield_the_cpu() -> None:
    """Let this thread (a password check) run only on CPU the rest of the
    server leaves over. Argon2 spreads one hash over a thread per lane (four),
    so even one check at a time could take every core of a small machine; on
    Linux a thread's nice value is its own and the lane threads it starts
    inherit it, so kiosks and phones keep the CPU while a flood is hashed."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)
