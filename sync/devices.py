"""The kiosk's devices as last seen (the printer), shared through the state DB
with the admin menu and the sync daemon's heartbeat."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from sync import commands, protocol
from sync.tickets import get_config, iso, now_utc, set_config

#: Config key the admin menu changes to wake the sync daemon at once.
SYNC_NOW_KEY = "sync_requested_at"

#: Config key holding a pairing code typed into the admin menu, for the daemon.
PAIR_REQUEST_KEY = "pair_request"
#: Config key: the kiosk switched to "out of order" from its admin menu.
OUT_OF_ORDER_KEY = "out_of_order"

#: States in which the kiosk cannot promise paper.
NO_PAPER_STATES = protocol.NO_PAPER_STATES


@dataclass(frozen=True)
class DeviceStatus:
    state: str
    detail: str
    updated_at: str


def record(db: sqlite_utils.Database, component: str, state: str, detail: str = "") -> None:
    db["device_status"].upsert(
        {
            "component": component,
            "state": state,
            "detail": detail[:500],
            "updated_at": iso(now_utc()),
        },
        pk="component",
    )


def get(db: sqlite_utils.Database, component: str) -> DeviceStatus | None:
    row = db.execute(
        "SELECT state, detail, updated_at FROM device_status WHERE component = ?", [component]
    ).fetchone()
    return None if row is None else DeviceStatus(*row)


def request_sync(db: sqlite_utils.Database) -> None:
    """ "Sync now" from the admin menu: the daemon notices within a quarter second."""
    set_config(db, SYNC_NOW_KEY, iso(now_utc()))


def request_pairing(db: sqlite_utils.Database, code: str) -> None:
    """A code from the admin menu; the sync daemon spends it (the kiosk has no network)."""
    set_config(db, PAIR_REQUEST_KEY, {"code": code, "requested_at": iso(now_utc())})
    record(db, "pairing", "requested", code)


def set_out_of_order(db: sqlite_utils.Database, out_of_order: bool) -> None:
    set_config(db, OUT_OF_ORDER_KEY, out_of_order)


def is_out_of_order(db: sqlite_utils.Database) -> bool:
    return bool(get_config(db, OUT_OF_ORDER_KEY, False))


def take_commands(db: sqlite_utils.Database) -> list[str]:
    """Operator commands (reload, reboot, sync now) not yet done, marked done
    first: a reboot is never repeated by the kiosk that comes back from it.
    Counter tickets to print are taken by the printing path (:mod:`sync.commands`)."""
    return [c.kind for c in commands.take(db, protocol.OPERATOR_COMMANDS)]


#: Device statuses that mean staff should look (component: the states that do).
PROBLEMS = {
    "tickets": ("conflict",),
    "state_db": ("recovered",),
    "config": ("kept_last_good",),  # the server's config reply was refused
}


def problems(db: sqlite_utils.Database) -> list[str]:
    """What staff should know of this kiosk beyond the printer: a recovered state
    DB, a ticket decided by another process. For the heartbeat and admin menu."""
    found = []
    for component, states in PROBLEMS.items():
        status = get(db, component)
        if status and status.state in states:
            found.append(
                f"{component} {status.state} {status.updated_at[:19]}: {status.detail}"[:500]
            )
    return found
