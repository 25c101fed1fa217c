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
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from sync import clock, schedule, tree
from sync.protocol import HEARTBEAT_S
from sync.state import boot_id, get_config, iso, now_utc, set_config, transaction

STANDALONE_LEASE_SIZE = 9999
OWN_SERIES_SIZE = 999
STANDALONE_SERIES = "X"  # a standalone kiosk's own series: AX-07
OWN_SERIES_FLOOR_KEY = "own_series_floor"  # after a DB recovery: continue above this
KIOSK_SEQ_FLOOR_KEY = "kiosk_seq_floor"  # after a DB recovery: the sequence jumps past the lost
INTERRUPTED = "print outcome unknown: the kiosk stopped while printing"


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
    category: str | None = None  # the category it is listed under; None: the top level
    locations: dict[str, str] = field(default_factory=dict)  # where to go, per language

    @property
    def is_open(self) -> bool:
        return self.availability.is_open

    def name(self, language: str) -> str:
        """The name in ``language``, else in any language given, else the id."""
        return self.names.get(language) or next(iter(self.names.values()), self.id)

    def text(self, language: str) -> str:
        return self.texts.get(language) or next(iter(self.texts.values()), "")

    def location(self, language: str) -> str:
        """Where its customers go ("Room 204, 2nd floor") in ``language``, else in
        any language given (a place is better said in another language than not
        at all), else nothing."""
        return self.locations.get(language) or next(iter(self.locations.values()), "")


@dataclass(frozen=True)
class Category:
    """A button of the service tree that opens a level of its own."""

    id: str
    names: dict[str, str]
    position: int = 0
    parent: str | None = None  # None: the top level
    #: open if any service under it is open; else the reason that ends soonest
    availability: schedule.Availability = schedule.OPEN

    @property
    def is_open(self) -> bool:
        return self.availability.is_open

    def name(self, language: str) -> str:
        """The name in ``language``, else in any language given, else the id."""
        return self.names.get(language) or next(iter(self.names.values()), self.id)


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
    time_source: str = "system"  # system | server | unsure (sync.clock)


# -- config and services ---------------------------------------------------


def apply_standalone_config(
    db: sqlite_utils.Database,
    *,
    branch: dict,
    ticket: dict,
    services: list[dict],
    categories: list[dict] = (),
) -> None:
    """Make the local config file the source of truth (no server configured).

    Services missing from the file are unlisted, not deleted: old tickets
    still point at them. ``categories`` (id, names, position, parent) make the
    service tree; a service's ``category`` puts it in one, its ``locations``
    say where its customers go.
    """
    with transaction(db):
        set_config(db, "mode", "standalone")
        set_config(db, "branch", branch)
        set_config(db, "ticket", ticket)
        put_categories(db, categories)
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
                    "category": service.get("category"),
                    "locations": json.dumps(service.get("locations") or {}, ensure_ascii=False),
                    "listed": 1,
                },
                pk="id",
            )


def put_categories(db: sqlite_utils.Database, categories: list[dict]) -> None:
    """The service tree's categories become these (inside the caller's
    transaction); those left out are unlisted."""
    db.execute("UPDATE categories SET listed = 0")
    for category in categories:
        db["categories"].upsert(
            {
                "id": category["id"],
                "names": json.dumps(category["names"], ensure_ascii=False),
                "position": int(category.get("position") or 0),
                "parent": category.get("parent"),
                "listed": 1,
            },
            pk="id",
        )


def listed_categories(db: sqlite_utils.Database) -> list[Category]:
    """Every category of the tree, by position (availability not worked out:
    :func:`tree_level` does that). A category whose parent is unknown, in a
    circle or too deep (a server's config the kiosk did not check) is put at
    the top level rather than lost."""
    rows = db.execute(
        "SELECT id, names, position, parent FROM categories WHERE listed = 1 ORDER BY position, id"
    ).fetchall()
    parents = tree.effective_parents({r[0]: r[3] for r in rows})
    return [Category(r[0], json.loads(r[1]), r[2], parents[r[0]]) for r in rows]


def tree_level(
    db: sqlite_utils.Database,
    category: str | None = None,
    moment: datetime | None = None,
    mono_ns: int | None = None,
) -> list[Service | Category]:
    """What one level of the service tree offers, in order: the services and the
    categories directly under ``category`` (None: the home screen's top level).

    Items are ordered by position; a category comes before a service of the
    same position, so a category without one comes first. A service's position
    is its place in the whole list of services. A category shows whether
    anything under it takes a ticket (:func:`sync.tree.summarise`: open if any
    service is, else the reason that ends soonest), so its button can say why
    as a service's does; a category with no service under it is left out. A
    service in a category the kiosk does not know is shown at the top level.
    """
    services = listed_services(db, moment, mono_ns)
    categories = listed_categories(db)
    known = {c.id: c for c in categories}

    def placed(service: Service) -> str | None:
        return service.category if service.category in known else None

    below: dict[str, list[schedule.Availability]] = {c.id: [] for c in categories}
    for service in services:
        ancestor = placed(service)
        while ancestor is not None:
            below[ancestor].append(service.availability)
            ancestor = known[ancestor].parent
    items: list[Service | Category] = [
        replace(c, availability=tree.summarise(below[c.id]))
        for c in categories
        if c.parent == category and below[c.id]
    ]
    items += [s for s in services if placed(s) == category]
    return sorted(items, key=lambda item: (item.position, isinstance(item, Service)))


def category_path(db: sqlite_utils.Database, category: str | None) -> list[Category]:
    """The categories from the top level down to ``category`` (for a screen's
    title and its way back); empty at the top level or for an unknown one."""
    known = {c.id: c for c in listed_categories(db)}
    path: list[Category] = []
    while category in known and len(path) < tree.MAX_DEPTH:
        path.insert(0, known[category])
        category = known[category].parent
    return path


def listed_services(
    db: sqlite_utils.Database, moment: datetime | None = None, mono_ns: int | None = None
) -> list[Service]:
    """The services the home screen offers, in order, with whether each takes a
    ticket at ``moment`` (default: now, as :mod:`sync.clock` reads it) and the
    queue a customer tapping now joins, where known (``mono_ns``: the monotonic
    clock, default now)."""
    now = clock.read(db, moment, mono_ns)
    day = branch_day(db, now.moment)
    rows = db.execute(
        """SELECT id, prefix, names, texts, position, category, locations FROM services
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
                availability=availability(db, r[0], now.moment, hours_known=now.sure),
                waiting=waiting,
                estimated_wait_s=wait_s,
                category=r[5],
                locations=json.loads(r[6]),
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
    db: sqlite_utils.Database, service_id: str, moment: datetime, hours_known: bool = True
) -> schedule.Availability:
    """Whether ``service_id`` takes a ticket at ``moment``: the manual switch,
    the opening hours and the daily cap, as this kiosk knows them.

    On a clock it is unsure of (``hours_known`` False) only the switch counts:
    the kiosk is on and customers are at the door.
    """
    row = db.execute(
        "SELECT is_open, schedule, daily_cap FROM services WHERE id = ?", [service_id]
    ).fetchone()
    opening, cap = schedule.Schedule.from_json(json.loads(row[1])), row[2]
    if row[0] and ((opening.always_open and cap is None) or not hours_known):
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


def _take_number(
    db: sqlite_utils.Database, service_id: str, day: str, sure: bool
) -> tuple[int, str]:
    """The next free number and its series ("" or the kiosk's own tag).

    On a clock it is sure of, a lease comes first: the server's, or the
    standalone kiosk's own for the day. Without one (a paired kiosk offline
    with its leases used up, or any kiosk unsure of the day) the number comes
    from the kiosk's own series, which no other kiosk and not the server can
    ever issue. A number this kiosk already gave out that day is skipped.
    """
    standalone = get_config(db, "mode") == "standalone"
    while sure:
        lease = db.execute(
            """SELECT id, next FROM leases
               WHERE service_id = ? AND day = ? AND next <= last AND source = ?
               ORDER BY first LIMIT 1""",
            [service_id, day, "standalone" if standalone else "server"],
        ).fetchone()
        if lease is None and standalone:
            lease = _open_standalone_lease(db, service_id, day)
        if lease is None:
            break
        db.execute("UPDATE leases SET next = next + 1 WHERE id = ?", [lease[0]])
        taken = db.execute(
            "SELECT 1 FROM tickets WHERE service_id = ? AND day = ? AND series = '' AND number = ?",
            [service_id, day, lease[1]],
        ).fetchone()
        if not taken:
            return lease[1], ""
    return _own_series_number(db, service_id, day), own_series_tag(db)


def own_series_tag(db: sqlite_utils.Database) -> str:
    """The paired kiosk's reserve tag from the server (``K1``), or the standalone
    kiosk's ``X``: a number in it (``AK1-07``) is visibly not a leased one."""
    if get_config(db, "mode") == "standalone":
        return STANDALONE_SERIES
    tag = str(get_config(db, "reserve_tag", "") or "")
    if not tag:
        raise NoNumberAvailable("no number lease left and no reserve series (not paired)")
    return tag


def _own_series_number(db: sqlite_utils.Database, service_id: str, day: str) -> int:
    """The kiosk's own series counts on across days (1..999, then 1 again), so a
    ticket from it never shares its number with another on any real day, even
    when the kiosk does not know which day it is."""
    series = own_series_tag(db)
    row = db.execute(
        "SELECT number, kiosk_seq FROM tickets WHERE service_id = ? AND series = ? "
        "ORDER BY kiosk_seq DESC LIMIT 1",
        [service_id, series],
    ).fetchone()
    start = row[0] if row else 0
    floor = get_config(db, OWN_SERIES_FLOOR_KEY)  # set by a recovery of a damaged DB
    if floor and (row is None or row[1] <= floor["after_seq"]):
        start = floor["numbers"].get(service_id, start)
    for step in range(1, OWN_SERIES_SIZE + 1):
        number = (start + step - 1) % OWN_SERIES_SIZE + 1  # 1..999
        if not db.execute(
            "SELECT 1 FROM tickets WHERE service_id = ? AND day = ? AND series = ? AND number = ?",
            [service_id, day, series, number],
        ).fetchone():
            return number
    raise NoNumberAvailable(f"all {OWN_SERIES_SIZE} numbers of series {series} used on {day}")


def _open_standalone_lease(
    db: sqlite_utils.Database, service_id: str, day: str
) -> tuple[int, int] | None:
    used = db.execute(
        "SELECT COALESCE(MAX(last), 0) FROM leases "
        "WHERE service_id = ? AND day = ? AND source = 'standalone'",
        [service_id, day],
    ).fetchone()[0]
    if used >= STANDALONE_LEASE_SIZE:
        return None  # the day's 9999 are gone: the own series goes on
    lease_id = (
        db["leases"]
        .insert(
            {
                "service_id": service_id,
                "day": day,
                "first": used + 1,
                "last": STANDALONE_LEASE_SIZE,
                "next": used + 1,
                "source": "standalone",
            }
        )
        .last_pk
    )
    return lease_id, used + 1


def display_number(prefix: str, number: int, series: str = "") -> str:
    """``A042``; a number of the kiosk's own series shows its tag: ``AK1-07``."""
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
    simulations pass their own clock. The wall clock is checked first
    (:mod:`sync.clock`): on one the kiosk cannot trust, the ticket still comes,
    from the kiosk's own series.

    Returns only after COMMIT, so a ticket that is later printed always exists.
    """
    mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
    with transaction(db):
        service = db.execute(
            "SELECT prefix FROM services WHERE id = ? AND listed = 1", [service_id]
        ).fetchone()
        if service is None:
            raise UnknownService(service_id)
        now = clock.read(db, moment, mono_ns)
        state = availability(db, service_id, now.moment, hours_known=now.sure)
        if not state.is_open:
            raise ServiceClosed(service_id, state)
        day = branch_day(db, now.moment) if now.sure else _likely_day(db, now.moment)
        number, series = _take_number(db, service_id, day, now.sure)
        seq = db.execute(
            "SELECT MAX(COALESCE(MAX(kiosk_seq), 0), ?) + 1 FROM tickets",
            [get_config(db, KIOSK_SEQ_FLOOR_KEY, 0)],
        ).fetchone()[0]
        ticket = Ticket(
            id=uuid.uuid4().hex,
            public_token=secrets.token_urlsafe(16),
            kiosk_seq=seq,
            service_id=service_id,
            day=day,
            number=number,
            display=display_number(service[0], number, series),
            language=language,
            issued_at=iso(now.moment),
            time_source=now.source,
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
                "issued_mono_ns": mono_ns,
                "boot_id": boot_id(),
                "time_source": now.source,
            }
        )
        db["outbox"].insert({"ticket_id": ticket.id, "created_at": ticket.issued_at})
    return ticket


def _likely_day(db: sqlite_utils.Database, moment: datetime) -> str:
    """A day for a ticket issued on an unsure clock: never before the last one's.
    Only a guess (the server places it by the monotonic clock); its number is
    from the own series, so a wrong guess clashes with nothing."""
    guess = branch_day(db, moment)
    last = db.execute("SELECT MAX(day) FROM tickets").fetchone()[0]
    return max(guess, last) if last else guess


class TicketStateConflict(RuntimeError):
    """A print outcome for a ticket that is void or unknown: something else (a
    second kiosk process) decided it. Logged and shown, never ignored."""


def mark_handed(db: sqlite_utils.Database, ticket_id: str) -> None:
    """Recorded (and on disk) before the first byte goes to the printer: from
    here on, a kill leaves a ticket whose paper may exist, so it stays valid."""
    with transaction(db):
        done = db.execute(
            "UPDATE tickets SET handed_at = ? WHERE id = ? AND state = 'committed'",
            [iso(now_utc()), ticket_id],
        ).rowcount
        if not done:
            _conflict(db, ticket_id, "handed to the printer")


def mark_printed(db: sqlite_utils.Database, ticket_id: str) -> None:
    with transaction(db):
        done = db.execute(
            "UPDATE tickets SET state = 'printed', printed_at = ?, print_error = NULL "
            "WHERE id = ? AND state IN ('committed', 'print_failed', 'printed')",
            [iso(now_utc()), ticket_id],
        ).rowcount
        if not done:
            _conflict(db, ticket_id, "printed")


def mark_print_failed(db: sqlite_utils.Database, ticket_id: str, error: str) -> None:
    """The ticket stays valid: the customer has it on screen."""
    with transaction(db):
        done = db.execute(
            "UPDATE tickets SET state = 'print_failed', print_error = ? "
            "WHERE id = ? AND state IN ('committed', 'print_failed')",
            [error[:500], ticket_id],
        ).rowcount
        if not done:
            _conflict(db, ticket_id, "failed to print")


def _conflict(db: sqlite_utils.Database, ticket_id: str, what: str) -> None:
    row = db.execute("SELECT display, state FROM tickets WHERE id = ?", [ticket_id]).fetchone()
    if row is None:
        raise TicketStateConflict(f"ticket {ticket_id} {what}, but it is not in the state DB")
    raise TicketStateConflict(f"{row[0]} {what}, but the state DB has it {row[1]}")


@dataclass(frozen=True)
class Settled:
    """What start-up found of the tickets the last run left undecided."""

    voided: list[str]  # never reached the printer: void, numbers not reused
    kept: list[str]  # bytes went to the printer: the paper may exist, so valid


def settle_interrupted(db: sqlite_utils.Database) -> Settled:
    """At start-up: decide every ticket the last run left half-way.

    Only a ticket that certainly never left the kiosk (committed, not handed
    to the printer) is voided; one whose bytes may have reached the printer
    stays valid, as ``print_failed`` with the reason, so staff can see it. Only
    the kiosk process calls this, holding the state directory's lock, before
    it issues anything.
    """
    with transaction(db):
        rows = db.execute(
            "SELECT display, handed_at IS NOT NULL FROM tickets WHERE state = 'committed' "
            "ORDER BY kiosk_seq"
        ).fetchall()
        db.execute(
            "UPDATE tickets SET state = 'void', print_error = 'not printed before restart' "
            "WHERE state = 'committed' AND handed_at IS NULL"
        )
        db.execute(
            "UPDATE tickets SET state = 'print_failed', print_error = ? "
            "WHERE state = 'committed' AND handed_at IS NOT NULL",
            [INTERRUPTED],
        )
    return Settled([r[0] for r in rows if not r[1]], [r[0] for r in rows if r[1]])


def void_unprinted(db: sqlite_utils.Database) -> list[str]:
    """:func:`settle_interrupted`, returning the voided numbers."""
    return settle_interrupted(db).voided


def get_ticket(db: sqlite_utils.Database, ticket_id: str) -> Ticket | None:
    row = db.execute(
        """SELECT id, public_token, kiosk_seq, service_id, day, number, display,
                  language, issued_at, state, time_source FROM tickets WHERE id = ?""",
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
        "SELECT id, prefix, names, texts, position, category, locations FROM services WHERE id = ?",
        [service_id],
    ).fetchone()
    if row is None:
        raise UnknownService(service_id)
    return Service(
        row[0],
        row[1],
        json.loads(row[2]),
        json.loads(row[3]),
        row[4],
        category=row[5],
        locations=json.loads(row[6]),
    )


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
