"""Verbs on the state DB that the kiosk uses: issue, record print outcome, void.

Everything that changes a ticket lives here so the invariants of the design
(commit before print, numbers never reused, unprinted tickets voided) are kept
in one place, whichever process calls them.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from sync import schedule
from sync.protocol import HEARTBEAT_S
from sync.state import transaction

STANDALONE_LEASE_SIZE = 9999
RESERVE_SERIES_SIZE = 999


class NoNumberAvailable(RuntimeError):
    """No lease has a free number for this service and day."""


class UnknownService(LookupError):
    """The tapped service is not (or no longer) offered."""


class ServiceClosed(RuntimeError):
    """The service is offered but takes no ticket just now (closed, hours, cap)."""

    def __init__(self, service_id: str, availability: schedule.Availability) -> None:
        super().__init__(f"{service_id}: {availability.status}")
        self.availability = availability


@dataclass(frozen=True)
class Service:
    id: str
    prefix: str
    names: dict[str, str]
    texts: dict[str, str]
    position: int
    availability: schedule.Availability = schedule.OPEN
    waiting: int | None = None
    estimated_wait_s: int | None = None

    @property
    def is_open(self) -> bool:
        return self.availability.is_open

    def name(self, language: str) -> str:
        """The name in ``language``, else in any language given, else the id."""
        return self.names.get(language) or next(iter(self.names.values()), self.id)

    def text(self, language: str) -> str:
        return self.texts.get(language) or next(iter(self.texts.values()), "")


@dataclass(frozen=True)
class Ticket:
    id: str
    public_token: str
    kiosk_seq: int
    service_id: str
    day: str
    number: int
    display: str
    language: str
    issued_at: str
    state: str = "committed"


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@cache
def boot_id() -> str:
    """Which boot a monotonic clock reading belongs to (it restarts at boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


# -- config and services ---------------------------------------------------


def set_config(db: sqlite_utils.Database, key: str, value: object) -> None:
    db["config"].upsert(
        {"key": key, "value": json.dumps(value), "updated_at": iso(now_utc())}, pk="key"
    )


def get_config(db: sqlite_utils.Database, key: str, default: object = None) -> object:
    row = db.execute("SELECT value FROM config WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])


def apply_standalone_config(
    db: sqlite_utils.Database,
    *,
    branch: dict,
    ticket: dict,
    services: list[dict],
) -> None:
    """Make the local config file the source of truth (no server configured).

    Services missing from the file are unlisted, not deleted: old tickets
    still point at them.
    """
    with transaction(db):
        set_config(db, "mode", "standalone")
        set_config(db, "branch", branch)
        set_config(db, "ticket", ticket)
        db.execute("UPDATE services SET listed = 0")
        for position, service in enumerate(services):
            db["services"].upsert(
                {
                    "id": service["id"],
                    "prefix": service["prefix"],
                    "names": json.dumps(service["names"], ensure_ascii=False),
                    "texts": json.dumps(service.get("texts", {}), ensure_ascii=False),
                    "position": position,
                    "is_open": 1,
                    "schedule": json.dumps(service.get("schedule") or {}),
                    "daily_cap": service.get("daily_cap"),
                    "listed": 1,
                },
                pk="id",
            )


def listed_services(
    db: sqlite_utils.Database, moment: datetime | None = None, mono_ns: int | None = None
) -> list[Service]:
    """The services the home screen offers, in order, with whether each takes a
    ticket at ``moment`` (default now) and the queue a customer tapping now
    joins, where known (``mono_ns``: the monotonic clock, default now)."""
    moment = moment or now_utc()
    day = branch_day(db, moment)
    rows = db.execute(
        """SELECT id, prefix, names, texts, position FROM services
           WHERE listed = 1 ORDER BY position"""
    ).fetchall()
    services = []
    for r in rows:
        waiting, wait_s = queue_ahead(db, r[0], day, mono_ns=mono_ns)
        services.append(
            Service(
                id=r[0],
                prefix=r[1],
                names=json.loads(r[2]),
                texts=json.loads(r[3]),
                position=r[4],
                availability=availability(db, r[0], moment),
                waiting=waiting,
                estimated_wait_s=wait_s,
            )
        )
    return services


def service_for_ticket(
    db: sqlite_utils.Database, ticket: Ticket, mono_ns: int | None = None
) -> Service:
    """The ticket's service with the queue before that ticket, for its paper:
    the snapshot plus this kiosk's own tickets issued before it since then."""
    service = get_service(db, ticket.service_id)
    waiting, wait_s = queue_ahead(
        db, ticket.service_id, ticket.day, before_seq=ticket.kiosk_seq, mono_ns=mono_ns
    )
    return replace(service, waiting=waiting, estimated_wait_s=wait_s)


# -- the queue as this kiosk knows it ----------------------------------------

#: A snapshot older than this is not printed: customers called since would make
#: it a promise the branch does not keep. A few missed heartbeats, not one.
QUEUE_FRESH_S = 3 * HEARTBEAT_S


def _snapshot(db: sqlite_utils.Database, service_id: str, day: str) -> tuple | None:
    """The service's snapshot if it is of ``day`` (the server's day when it answered)."""
    row = db.execute(
        "SELECT waiting, estimated_wait_s, issued, counted_seq, wait_per_person_s, "
        "received_mono_ns, received_boot_id, updated_at FROM queue_snapshot WHERE service_id = ?",
        [service_id],
    ).fetchone()
    if row is None or branch_day(db, datetime.fromisoformat(row[7])) != day:
        return None
    return row


def own_since_snapshot(
    db: sqlite_utils.Database, service_id: str, day: str, before_seq: int | None = None
) -> int:
    """This kiosk's tickets of ``service_id`` and ``day`` that the last queue
    snapshot did not count (issued before ``before_seq`` when given).

    The server counts a ticket once it is delivered; tickets delivered after
    the heartbeat are in neither its count nor the outbox, so "undelivered" is
    not enough. Void tickets reached nobody; parked ones were refused by the
    server and are in no queue.
    """
    snapshot = _snapshot(db, service_id, day)
    return _own_since(db, service_id, day, snapshot[3] if snapshot else None, before_seq)


def _own_since(
    db: sqlite_utils.Database,
    service_id: str,
    day: str,
    counted_seq: int | None,
    before_seq: int | None,
) -> int:
    # parked rows are few: subtract them (CROSS JOIN: from the outbox index, not per ticket)
    which = (
        "t.service_id = ? AND t.day = ? AND t.state != 'void' AND t.kiosk_seq > ? "
        "AND (? IS NULL OR t.kiosk_seq < ?)"
    )
    params = [service_id, day, counted_seq or 0, before_seq, before_seq]
    return db.execute(
        f"SELECT (SELECT COUNT(*) FROM tickets t WHERE {which}) - "
        "(SELECT COUNT(*) FROM outbox o CROSS JOIN tickets t ON t.id = o.ticket_id "
        f"WHERE o.delivered_at IS NULL AND o.parked_reason IS NOT NULL AND {which})",
        params + params,
    ).fetchone()[0]


def queue_ahead(
    db: sqlite_utils.Database,
    service_id: str,
    day: str,
    before_seq: int | None = None,
    mono_ns: int | None = None,
) -> tuple[int | None, int | None]:
    """People waiting and the estimated wait for a ticket issued now (or the one
    with ``before_seq``), or ``None`` for what the kiosk cannot honestly say:
    no fresh snapshot, a ticket the snapshot already counted, or own tickets
    since it without the server's seconds per person."""
    snapshot = _snapshot(db, service_id, day)
    if snapshot is None:
        return None, None
    waiting, wait_s, _issued, counted, per_person, received_ns, received_boot, _ = snapshot
    mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
    if (
        received_ns is None
        or received_boot != boot_id()
        or mono_ns - received_ns > QUEUE_FRESH_S * 1e9
        or (before_seq is not None and before_seq <= (counted or 0))
    ):
        return None, None
    own = _own_since(db, service_id, day, counted, before_seq)
    if wait_s is not None and own:
        wait_s = None if per_person is None else round(wait_s + own * per_person)
    return waiting + own, wait_s


def branch_local(db: sqlite_utils.Database, moment: datetime) -> datetime:
    """``moment`` on the branch's wall clock (its time zone from the config)."""
    branch = get_config(db, "branch", {}) or {}
    return moment.astimezone(ZoneInfo(branch.get("timezone") or "UTC"))


def availability(
    db: sqlite_utils.Database, service_id: str, moment: datetime
) -> schedule.Availability:
    """Whether ``service_id`` takes a ticket at ``moment``: the manual switch,
    the opening hours and the daily cap, as this kiosk knows them."""
    row = db.execute(
        "SELECT is_open, schedule, daily_cap FROM services WHERE id = ?", [service_id]
    ).fetchone()
    opening, cap = schedule.Schedule.from_json(json.loads(row[1])), row[2]
    if row[0] and opening.always_open and cap is None:
        return schedule.OPEN  # the common case needs no clock
    local = branch_local(db, moment)
    return schedule.availability(
        is_open=bool(row[0]),
        schedule=opening,
        local=local,
        daily_cap=cap,
        issued_today=0 if cap is None else issued_today(db, service_id, local.date().isoformat()),
    )


def issued_today(db: sqlite_utils.Database, service_id: str, day: str) -> int:
    """Tickets of the branch today as far as this kiosk knows: the server's
    count at the last heartbeat plus its own since (all of its own when
    standalone). Void tickets reached nobody and do not count."""
    if get_config(db, "mode") == "standalone":
        return db.execute(
            "SELECT COUNT(*) FROM tickets WHERE service_id = ? AND day = ? AND state != 'void'",
            [service_id, day],
        ).fetchone()[0]
    snapshot = _snapshot(db, service_id, day)
    server_count = (snapshot[2] if snapshot else None) or 0
    return server_count + own_since_snapshot(db, service_id, day)


# -- the tap ---------------------------------------------------------------


def branch_day(db: sqlite_utils.Database, moment: datetime) -> str:
    """The branch-local date: numbers restart at the branch's midnight."""
    return branch_local(db, moment).date().isoformat()


def _take_number(db: sqlite_utils.Database, service_id: str, day: str) -> tuple[int, str]:
    """The next free number and its series ("" or the kiosk's reserve tag).

    Leases from the server (or the standalone kiosk's own) come first; a
    paired kiosk with none left falls back to its reserve series, which no
    other kiosk and not the server can ever issue. A number this kiosk already
    gave out today (say, standalone before it was paired) is skipped.
    """
    sources = ("standalone",) if get_config(db, "mode") == "standalone" else ("server", "reserve")
    while True:
        lease = db.execute(
            f"""SELECT id, next, source FROM leases
               WHERE service_id = ? AND day = ? AND next <= last
                 AND source IN ({", ".join("?" * len(sources))})
               ORDER BY source = 'reserve', first LIMIT 1""",
            [service_id, day, *sources],
        ).fetchone()
        if lease is None:
            lease = _open_own_lease(db, service_id, day)
        lease_id, number, source = lease
        db.execute("UPDATE leases SET next = next + 1 WHERE id = ?", [lease_id])
        series = str(get_config(db, "reserve_tag", "")) if source == "reserve" else ""
        taken = db.execute(
            "SELECT 1 FROM tickets WHERE service_id = ? AND day = ? AND series = ? AND number = ?",
            [service_id, day, series, number],
        ).fetchone()
        if not taken:
            return number, series


def _open_own_lease(db: sqlite_utils.Database, service_id: str, day: str) -> tuple[int, int, str]:
    mode = get_config(db, "mode")
    if mode == "standalone":
        source, size = "standalone", STANDALONE_LEASE_SIZE
    elif mode == "paired" and get_config(db, "reserve_tag"):
        source, size = "reserve", RESERVE_SERIES_SIZE
    else:
        raise NoNumberAvailable(f"no number lease left for {service_id} on {day}")
    used = db.execute(
        "SELECT COALESCE(MAX(last), 0) FROM leases WHERE service_id = ? AND day = ? AND source = ?",
        [service_id, day, source],
    ).fetchone()[0]
    if used >= size:
        raise NoNumberAvailable(f"all {used} {source} numbers of {service_id} used on {day}")
    lease_id = (
        db["leases"]
        .insert(
            {
                "service_id": service_id,
                "day": day,
                "first": used + 1,
                "last": size,
                "next": used + 1,
                "source": source,
            }
        )
        .last_pk
    )
    return lease_id, used + 1, source


def display_number(prefix: str, number: int, series: str = "") -> str:
    """``A042``; a reserve-series number shows its kiosk's tag: ``AK1-07``."""
    return f"{prefix}{series}-{number:02d}" if series else f"{prefix}{number:03d}"


def issue_ticket(
    db: sqlite_utils.Database,
    service_id: str,
    *,
    language: str,
    moment: datetime | None = None,
    mono_ns: int | None = None,
) -> Ticket:
    """One ``BEGIN IMMEDIATE`` transaction: number, ticket row, outbox row.

    ``moment`` (wall clock) and ``mono_ns`` (monotonic clock) default to now;
    simulations pass their own clock.

    Returns only after COMMIT, so a ticket that is later printed always exists.
    """
    moment = moment or now_utc()
    with transaction(db):
        service = db.execute(
            "SELECT prefix FROM services WHERE id = ? AND listed = 1", [service_id]
        ).fetchone()
        if service is None:
            raise UnknownService(service_id)
        state = availability(db, service_id, moment)
        if not state.is_open:
            raise ServiceClosed(service_id, state)
        day = branch_day(db, moment)
        number, series = _take_number(db, service_id, day)
        seq = db.execute("SELECT COALESCE(MAX(kiosk_seq), 0) + 1 FROM tickets").fetchone()[0]
        ticket = Ticket(
            id=uuid.uuid4().hex,
            public_token=secrets.token_urlsafe(16),
            kiosk_seq=seq,
            service_id=service_id,
            day=day,
            number=number,
            display=display_number(service[0], number, series),
            language=language,
            issued_at=iso(moment),
        )
        db["tickets"].insert(
            {
                "id": ticket.id,
                "public_token": ticket.public_token,
                "kiosk_seq": ticket.kiosk_seq,
                "service_id": service_id,
                "day": day,
                "number": number,
                "series": series,
                "display": ticket.display,
                "language": language,
                "issued_at": ticket.issued_at,
                "issued_mono_ns": time.monotonic_ns() if mono_ns is None else mono_ns,
                "boot_id": boot_id(),
            }
        )
        db["outbox"].insert({"ticket_id": ticket.id, "created_at": ticket.issued_at})
    return ticket


def mark_printed(db: sqlite_utils.Database, ticket_id: str) -> None:
    with transaction(db):
        db.execute(
            "UPDATE tickets SET state = 'printed', printed_at = ?, print_error = NULL "
            "WHERE id = ? AND state IN ('committed', 'print_failed')",
            [iso(now_utc()), ticket_id],
        )


def mark_print_failed(db: sqlite_utils.Database, ticket_id: str, error: str) -> None:
    """The ticket stays valid: the customer has it on screen."""
    with transaction(db):
        db.execute(
            "UPDATE tickets SET state = 'print_failed', print_error = ? "
            "WHERE id = ? AND state = 'committed'",
            [error[:500], ticket_id],
        )


def void_unprinted(db: sqlite_utils.Database) -> list[str]:
    """At start-up: tickets committed but never printed become void.

    Only the kiosk calls this, before it issues anything, so no ticket of the
    running process can be caught half-way.
    """
    with transaction(db):
        voided = [
            r[0]
            for r in db.execute(
                "SELECT display FROM tickets WHERE state = 'committed' ORDER BY kiosk_seq"
            ).fetchall()
        ]
        db.execute(
            "UPDATE tickets SET state = 'void', print_error = 'not printed before restart' "
            "WHERE state = 'committed'"
        )
    return voided


def get_ticket(db: sqlite_utils.Database, ticket_id: str) -> Ticket | None:
    row = db.execute(
        """SELECT id, public_token, kiosk_seq, service_id, day, number, display,
                  language, issued_at, state FROM tickets WHERE id = ?""",
        [ticket_id],
    ).fetchone()
    return None if row is None else Ticket(*row)


def last_valid_ticket(db: sqlite_utils.Database) -> Ticket | None:
    """The newest ticket that is not void (for "reprint last ticket")."""
    row = db.execute(
        "SELECT id FROM tickets WHERE state != 'void' ORDER BY kiosk_seq DESC LIMIT 1"
    ).fetchone()
    return None if row is None else get_ticket(db, row[0])


def get_service(db: sqlite_utils.Database, service_id: str) -> Service:
    """A service by id, listed or not (old tickets keep their service)."""
    row = db.execute(
        "SELECT id, prefix, names, texts, position FROM services WHERE id = ?",
        [service_id],
    ).fetchone()
    if row is None:
        raise UnknownService(service_id)
    return Service(row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4])


def outbox_depth(db: sqlite_utils.Database) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND parked_reason IS NULL"
    ).fetchone()[0]


def lease_levels(db: sqlite_utils.Database, day: str) -> dict[str, dict[str, int]]:
    """Numbers left today per service and lease source (for the admin menu)."""
    levels: dict[str, dict[str, int]] = {}
    for service_id, source, left in db.execute(
        "SELECT service_id, source, SUM(last - next + 1) FROM leases WHERE day = ? "
        "AND next <= last GROUP BY service_id, source",
        [day],
    ):
        levels.setdefault(service_id, {})[source] = left
    return levels
