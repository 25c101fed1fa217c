"""Tickets arriving from kiosks: each applied exactly once, placed in its day's
queue at the time it was really issued."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from server import events
from server.storage.common import Rejected, iso, now, zone
from server.storage.database import Database, Tx
from server.storage.numbering import LEASE_MIDNIGHT_SLACK_MIN
from sync import protocol

log = logging.getLogger("vuoro.server")


@dataclass(frozen=True)
class _BatchContext:
    """What every ticket of one batch is checked against, read once."""

    zone: ZoneInfo
    services: set[str]
    days: set[str]  # whose queues take tickets now
    leases: list[tuple[str, str, int, int]]  # found so far: a batch's tickets share a few


@dataclass(frozen=True)
class Placement:
    """Where a received ticket goes: the day whose queue it joins and its place
    time there, or no day at all (``parked`` says why) when nobody can tell.
    ``believed`` is False when the kiosk's clock put the ticket outside its day
    or after it arrived: then ``queued`` is only the arrival."""

    day: str
    queued: datetime
    parked: str = ""
    believed: bool = True


def day_bounds(day: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """When the branch's ``day`` begins and the next one begins."""
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    return start, start + timedelta(days=1)


def ingest_days(received: datetime, zone: ZoneInfo) -> set[str]:
    """The days whose queues take a ticket arriving at ``received``: the branch's
    today and yesterday (a kiosk offline over midnight), and tomorrow in the
    last minutes before midnight (a kiosk a little fast, as for leases)."""
    local = received.astimezone(zone)
    slack = timedelta(minutes=LEASE_MIDNIGHT_SLACK_MIN)
    return {
        local.date().isoformat(),
        (local.date() - timedelta(days=1)).isoformat(),
        (received + slack).astimezone(zone).date().isoformat(),
    }


def place(
    batch: protocol.TicketBatch, t: protocol.TicketIn, received: datetime, zone: ZoneInfo
) -> Placement:
    """When the ticket was really issued, on the server's clock, and so its day.

    Same boot: the kiosk's monotonic clock says how long before sending it was
    issued, whatever its wall clock said; the ticket joins the queue of the
    real day that gives (a kiosk unsure of its clock sends such tickets from
    its own series, numbered across days, so any day is safe for them).
    Otherwise the kiosk's wall clock, shifted by how wrong it was at send time,
    within the day the kiosk gave (its lease's day) — unless the kiosk said it
    was unsure of that clock: then the day is unknowable and the ticket is
    parked for staff. A wall clock that puts the ticket before its day began or
    after it arrived is not believed: nobody can say when it was issued.
    """
    if t.boot_id and t.boot_id == batch.boot_id and t.issued_mono_ns <= batch.sent_mono_ns:
        moment = received - timedelta(microseconds=(batch.sent_mono_ns - t.issued_mono_ns) / 1000)
        return Placement(moment.astimezone(zone).date().isoformat(), moment)
    if t.time_source == "unsure":
        return Placement(t.day, received, "issue_time_unknown")
    start, end = day_bounds(t.day, zone)
    try:
        moment = protocol.parse_moment(t.issued_at) + (
            received - protocol.parse_moment(batch.sent_at)
        )
    except (ValueError, OverflowError):
        return Placement(t.day, received, believed=False)
    if start <= moment <= min(received, end):
        return Placement(t.day, moment)
    return Placement(t.day, received, believed=False)


#: Changes to the schema above, in order; PRAGMA user_version counts the applied ones.
MIGRATIONS = [
    "ALTER TABLE tickets ADD COLUMN counter TEXT",
    "ALTER TABLE tickets ADD COLUMN called_at TEXT",
    "ALTER TABLE tickets ADD COLUMN finished_at TEXT",
    "ALTER TABLE tickets ADD COLUMN started_at TEXT",
    """CREATE TABLE staff (
        id INTEGER PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, counter TEXT NOT NULL,
        services TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL)""",
    """CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY, staff_id INTEGER NOT NULL REFERENCES staff(id),
        csrf TEXT NOT NULL, expires_at TEXT NOT NULL)""",
    """CREATE TABLE login_failures (
        key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until TEXT)""",
    """CREATE TABLE feedback (
        ticket_id TEXT PRIMARY KEY REFERENCES tickets(id),
        rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)""",
    # the queue a ticket waits in: its own service's, unless staff transferred it
    "ALTER TABLE tickets ADD COLUMN queue_id TEXT",
    "UPDATE tickets SET queue_id = service_id",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, status, queued_at)",
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at)",
    # a counter calls waiting tickets of higher-priority services first
    "ALTER TABLE services ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
    # opening hours, date exceptions and last-ticket time (sync.schedule), as JSON
    "ALTER TABLE services ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}'",
    # managers edit their branch; staff only call
    "ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'staff'",
    "ALTER TABLE kiosks ADD COLUMN renamed_at TEXT",
    # a ticket nobody can place in a day's queue waits here for staff, with the reason
    "ALTER TABLE tickets ADD COLUMN park_reason TEXT",
    # failures that leak away (server.throttle): per address, per account, per server
    "CREATE TABLE throttle (key TEXT PRIMARY KEY, level REAL NOT NULL, updated_at REAL NOT NULL)",
    "CREATE INDEX throttle_age ON throttle(updated_at)",
    "DROP TABLE login_failures",
    # a counter's called ticket, checked at every call
    "CREATE INDEX tickets_at_counter ON tickets(branch_id, counter, status)",
    # the calling order's tie-break too, so a place among tickets of one millisecond
    # is counted in the index alone
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at, "
    "kiosk_seq, id)",
]


class Ingest:
    database: Database

    def ingest(self, kiosk: dict, batch: protocol.TicketBatch) -> list[protocol.TicketResult]:
        """Apply each ticket exactly once (the id is the key, forever)."""
        received = now()
        rows = batch.tickets
        outcomes = {
            i: f"rejected:{row.reason}"
            for i, row in enumerate(rows)
            if isinstance(row, protocol.InvalidRow)
        }
        tickets = sorted(
            ((i, row) for i, row in enumerate(rows) if isinstance(row, protocol.TicketIn)),
            key=lambda pair: pair[1].kiosk_seq,
        )
        with self.database.transaction() as db:
            # one batch of a kiosk at a time: a retry on another worker waits, then
            # finds every ticket applied ("duplicate")
            db.lock_row("kiosks", "id", kiosk["id"])
            branch_zone = zone(db, kiosk["branch_id"])
            context = _BatchContext(
                zone=branch_zone,
                services={
                    r[0]
                    for r in db.execute(
                        "SELECT id FROM services WHERE branch_id = ?", [kiosk["branch_id"]]
                    )
                },
                days=ingest_days(received, branch_zone),
                leases=[],
            )
            placements = {i: place(batch, t, received, branch_zone) for i, t in tickets}
            # a ticket whose clock is not believed goes just before the kiosk's next
            # believed one of the day (it was issued before it), not at the end:
            # one wrong clock must not push the kiosk's later tickets back
            following: dict[int, datetime | None] = {}
            earliest: dict[str, datetime] = {}
            for i, _t in reversed(tickets):
                placement = placements[i]
                following[i] = earliest.get(placement.day)
                if placement.believed and not placement.parked:
                    earliest[placement.day] = min(
                        placement.queued, earliest.get(placement.day, placement.queued)
                    )
            expected = db.execute(
                "SELECT applied_seq + 1 FROM kiosks WHERE id = ?", [kiosk["id"]]
            ).fetchone()[0]
            joined: dict[str, list[str]] = {}  # queue: tickets that joined it
            for i, ticket in tickets:
                try:
                    outcome = self._apply(
                        db, kiosk, ticket, placements[i], following[i], received, context
                    )
                except Rejected as exc:
                    outcome = f"rejected:{exc}"
                if outcome == "created" and ticket.kiosk_seq > expected:
                    # Unlike Replicache we take it anyway (a lost ticket is worse than a
                    # hole), and say so: the kiosk lost rows, e.g. a restored DB.
                    log.warning(
                        "kiosk %s: tickets %d..%d never arrived",
                        kiosk["id"],
                        expected,
                        ticket.kiosk_seq - 1,
                    )
                expected = max(expected, ticket.kiosk_seq + 1)
                outcomes[i] = outcome
                if outcome == "created" and ticket.state != "void" and not placements[i].parked:
                    joined.setdefault(ticket.service_id, []).append(ticket.id)
            for queue_id, ids in joined.items():
                events.record(db, kiosk["branch_id"], queue_id, events.CREATED, tickets=ids)
            db.execute(
                "UPDATE kiosks SET last_seen_at = ?, applied_seq = "
                f"{db.dialect.greatest}(applied_seq, "
                "COALESCE((SELECT MAX(kiosk_seq) FROM tickets WHERE kiosk_id = ?), 0)) "
                "WHERE id = ?",
                [iso(received), kiosk["id"], kiosk["id"]],
            )
        # in the order of the rows, one for each (a row without a usable id answers "")
        return [protocol.TicketResult(id=row.id, result=outcomes[i]) for i, row in enumerate(rows)]

    def _apply(
        self,
        db,
        kiosk: dict,
        t: protocol.TicketIn,
        placement: Placement,
        following: datetime | None,
        received: datetime,
        context: _BatchContext,
    ) -> str:
        known = db.execute("SELECT kiosk_id FROM tickets WHERE id = ?", [t.id]).fetchone()
        if known is not None:
            if known[0] != kiosk["id"]:
                raise Rejected("id_taken")
            return "duplicate"
        if t.service_id not in context.services:
            raise Rejected(f"unknown_service:{t.service_id}")
        if not placement.parked and placement.day not in context.days:
            # a queue nobody calls any more, or not yet: the customer would wait for ever
            raise Rejected(f"day_out_of_range:{placement.day}")
        if t.series:
            if t.series != kiosk["reserve_tag"]:
                raise Rejected("not_your_reserve_series")
        elif not self._leased(db, kiosk, t, context.leases):
            raise Rejected("number_not_leased")
        queued = received
        if not placement.parked:
            queued = self._fair_time(db, kiosk, t, placement, following, received, context.zone)
        created = db.execute(
            "INSERT INTO tickets (id, branch_id, service_id, queue_id, kiosk_id, public_token, "
            "day, number, series, display, kiosk_seq, language, issued_at_kiosk, queued_at, "
            "received_at, status, print_state, park_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [
                t.id,
                kiosk["branch_id"],
                t.service_id,
                t.service_id,
                kiosk["id"],
                t.public_token,
                placement.day,
                t.number,
                t.series,
                t.display,
                t.kiosk_seq,
                t.language,
                t.issued_at,
                iso(queued),
                iso(received),
                "void" if t.state == "void" else "parked" if placement.parked else "waiting",
                t.state,
                placement.parked or None,
            ],
        ).rowcount
        if not created:
            raise Rejected("number_or_token_taken")
        return "created"

    @staticmethod
    def _leased(
        db: Tx,
        kiosk: dict,
        t: protocol.TicketIn,
        found: list[tuple[str, str, int, int]],
    ) -> bool:
        """Was the ticket's number leased to this kiosk? One indexed look-up however
        many leases it holds (they never overlap), none for a lease already found."""
        if any(
            service == t.service_id and day == t.day and first <= t.number <= last
            for service, day, first, last in found
        ):
            return True
        lease = db.execute(
            "SELECT first, last FROM leases WHERE kiosk_id = ? AND service_id = ? AND day = ? "
            "AND first <= ? ORDER BY first DESC LIMIT 1",
            [kiosk["id"], t.service_id, t.day, t.number],
        ).fetchone()
        if lease is None or t.number > lease[1]:
            return False
        found.append((t.service_id, t.day, lease[0], lease[1]))
        return True

    @staticmethod
    def _fair_time(
        db: Tx,
        kiosk: dict,
        t: protocol.TicketIn,
        placement: Placement,
        following: datetime | None,
        received: datetime,
        zone: ZoneInfo,
    ) -> datetime:
        """The ticket's place time: when it was issued, if believed; else just
        before the kiosk's next believed ticket, or its arrival. Never before the
        kiosk's previous ticket of the day (the kiosk's order is kept), never
        before the day began, never after it arrived or its day ended."""
        queued = placement.queued if placement.believed else following or received
        before = db.execute(
            "SELECT queued_at FROM tickets WHERE kiosk_id = ? AND kiosk_seq < ? AND day = ? "
            "ORDER BY kiosk_seq DESC LIMIT 1",
            [kiosk["id"], t.kiosk_seq, placement.day],
        ).fetchone()
        if before:
            queued = max(queued, datetime.fromisoformat(before[0]))
        start, end = day_bounds(placement.day, zone)
        return min(max(queued, start), received, end)
