"""The server's storage: branches, services, kiosks, pairing codes, number
counters and leases, tickets, calling, figures, reports; on SQLite or PostgreSQL.

One module per noun, each a part of :class:`Storage`; ``database`` holds the
engine and what the two databases do differently, ``schema`` the tables,
``migrate`` the Alembic revisions that make them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from server.storage import migrate
from server.storage.branches import Branches
from server.storage.callbacks import Callbacks
from server.storage.calling import Calling
from server.storage.common import (
    CounterBusy,
    Rejected,
    Throttled,
    Unauthorized,
    branch_today,
    iso,
    now,
)
from server.storage.database import Database, Tx, database_url
from server.storage.desks import Desks
from server.storage.devices import MAX_LIVE_CODES, PAIR_ADDRESS, PAIR_SERVER, Devices
from server.storage.displays import Displays
from server.storage.ingest import Ingest, Placement, day_bounds, ingest_days, place
from server.storage.issuing import Issuing, JoinRefused
from server.storage.notify import Notify
from server.storage.numbering import LEASE_UNUSED_MAX, Numbering
from server.storage.reports import Reports
from server.storage.stats import Stats
from server.storage.tickets import Tickets

__all__ = [
    "LEASE_UNUSED_MAX",
    "MAX_LIVE_CODES",
    "PAIR_ADDRESS",
    "PAIR_SERVER",
    "CounterBusy",
    "Database",
    "JoinRefused",
    "Placement",
    "Rejected",
    "Storage",
    "Throttled",
    "Tx",
    "Unauthorized",
    "branch_today",
    "database_url",
    "day_bounds",
    "ingest_days",
    "iso",
    "now",
    "place",
]


class Storage(
    Branches,
    Devices,
    Displays,
    Numbering,
    Ingest,
    Tickets,
    Calling,
    Stats,
    Desks,
    Issuing,
    Reports,
    Callbacks,
    Notify,
):
    """Every verb of storage on one database (a URL, or an SQLite file's path),
    its tables brought up to date on opening."""

    def __init__(self, target: str | Path, upgrade: bool = True) -> None:
        self.database = Database(target)
        self._estimates = {}
        self._queues = {}
        self._ties = {}
        if upgrade:
            migrate.upgrade(self.database)

    @property
    def target(self) -> str:
        """What opens this database again (a URL, password included)."""
        return self.database.url.render_as_string(hide_password=False)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.database.path

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        return self.database.transaction()

    def reading(self) -> contextlib.AbstractContextManager[Tx]:
        return self.database.reading()
