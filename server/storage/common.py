"""What every part of storage shares: its errors, the clock, the time format,
and the branch's time zone and day."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from server.storage.database import Tx


class Rejected(ValueError):
    """A request that can never succeed as sent; the message is the reason."""


class Unauthorized(PermissionError):
    pass


class CounterBusy(Rejected):
    """The counter still has a ticket called: it is served (or marked) first."""

    def __init__(self, counter: str, number: str) -> None:
        super().__init__(f"{number} is still called at counter {counter}")
        self.counter, self.number = counter, number


class Throttled(Exception):
    """Too many failures from here (or everywhere): try again after ``seconds``."""

    def __init__(self, what: str, seconds: int) -> None:
        super().__init__(f"{what}; try again in {seconds} s")
        self.seconds = seconds


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _json_cached(text: str) -> object:
    return json.loads(text)


def _json(text: str) -> dict | list:
    """Service names and branch languages, parsed once: every poll reads them.
    A copy, so no caller can change the cached value."""
    return copy.copy(_json_cached(text))


def zone(db: Tx, branch_id: str) -> ZoneInfo:
    row = db.execute("SELECT timezone FROM branches WHERE id = ?", [branch_id]).fetchone()
    return ZoneInfo(row[0])


def branch_today(db: Tx, branch_id: str) -> tuple[str, datetime]:
    """The branch-local date and the moment it began (its local midnight)."""
    local = now().astimezone(zone(db, branch_id))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.date().isoformat(), midnight
