"""Tickets the server issues itself: at a counter (staff hand one to a customer
the kiosk could not serve) and from a customer's phone (the remote join).

Both take their numbers from the same day counter the kiosks' leases are
taken from (:func:`issue`), so a number is never given twice, whoever gave it.
A remote join is held to what the kiosk holds a tap to (the service's switch,
its opening hours and its daily cap: :func:`availability`), to the branch's
switch, to one active ticket per device and service, and to a leaky bucket per
client address (``server.throttle``).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import datetime

from server import events, throttle
from server.storage.common import Rejected, Throttled, _hash, branch_today, iso, now, zone
from server.storage.database import Database, Tx
from sync import schedule
from sync.tickets import display_number

ORIGINS = ("counter", "remote")
#: tickets still to be called or being called: a device holds one per service
ACTIVE = ("waiting", "called")
#: remote joins per client address and branch: a burst of 20 (a family, a
#: branch's wifi behind one address), then one every 30 s
JOIN_ADDRESS = throttle.Bucket("join-address", capacity=20, leak_s=30)


class JoinRefused(Rejected):
    """A join the branch does not take now: ``reason`` is ``off`` (the branch's
    switch), ``unknown`` (no such service), or a :class:`schedule.Availability`
    status (``closed``, ``later``, ``done_today``, ``closed_today``, ``full``);
    ``opens_at`` is when the service next opens, where known."""

    def __init__(self, reason: str, opens_at: datetime | None = None) -> None:
        super().__init__(f"join refused: {reason}")
        self.reason, self.opens_at = reason, opens_at


def device_hash(device: str) -> str:
    """What is stored of a device cookie: its hash, never the cookie itself."""
    return _hash(device)


def availability(
    service: dict, local: datetime, issued_today: int
) -> tuple[schedule.Availability, datetime | None]:
    """Whether ``service`` (as ``branch_settings`` gives it) takes a ticket at
    ``local``, by the kiosk's own rule (:func:`sync.schedule.availability`), and
    when it next opens if it does not (None: not known)."""
    opening = schedule.Schedule.from_json(service["schedule"])
    state = schedule.availability(
        is_open=service["is_open"],
        schedule=opening,
        local=local,
        daily_cap=service["daily_cap"],
        issued_today=issued_today,
    )
    if state.is_open or state.status == "closed":  # switched off: nobody knows until when
        return state, None
    if state.status == "full":  # not today: the next opening from tomorrow on
        return state, opening.next_opening(local.replace(hour=23, minute=59))
    return state, opening.next_opening(local)


def issue(
    db: Tx,
    branch_id: str,
    service_id: str,
    prefix: str,
    origin: str,
    *,
    staff_id: int | None = None,
    device: str | None = None,
    language: str = "",
) -> dict:
    """A ticket at the end of the service's queue, in the caller's transaction:
    the next number of the day's counter (the one the kiosks' leases are taken
    from, so no kiosk holds it)."""
    if origin not in ORIGINS:
        raise ValueError(f"a ticket the server issues comes from {ORIGINS}, not {origin!r}")
    day, _ = branch_today(db, branch_id)
    number = db.execute(
        "INSERT INTO counters (branch_id, service_id, day, next) VALUES (?, ?, ?, 2) "
        "ON CONFLICT (branch_id, service_id, day) DO UPDATE SET next = counters.next + 1 "
        "RETURNING next - 1",
        [branch_id, service_id, day],
    ).scalar_one()
    moment = iso(now())
    ticket = {
        "id": str(uuid.uuid4()),
        "branch_id": branch_id,
        "service_id": service_id,
        "queue_id": service_id,
        "public_token": secrets.token_urlsafe(16),
        "day": day,
        "number": number,
        "series": "",
        "display": display_number(prefix, number),
        "language": language,
        "queued_at": moment,
        "received_at": moment,
        "status": "waiting",
        "print_state": "none",
        "staff_id": staff_id,
        "origin": origin,
        "device": device,
    }
    db.insert("tickets", ticket)
    events.record(db, branch_id, service_id, events.CREATED, tickets=[ticket["id"]])
    return {k: ticket[k] for k in ("id", "number", "display", "public_token", "service_id", "day")}


class Issuing:
    database: Database

    def remote_join_on(self, branch_id: str) -> bool:
        """The branch's switch: may customers join its queues from their phones?"""
        with self.database.reading() as db:
            row = db.execute(
                "SELECT remote_join FROM branches WHERE id = ?", [branch_id]
            ).fetchone()
        return bool(row and row[0])

    def device_tickets(self, branch_id: str, device: str) -> dict[str, dict]:
        """The tickets a device (its cookie's hash) holds in the branch and
        that are still waiting or called, by service: number and token."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT service_id, display, public_token FROM tickets WHERE device = ? "
                "AND branch_id = ? AND status IN (?, ?) ORDER BY queued_at",
                [device, branch_id, *ACTIVE],
            ).fetchall()
        return {service: {"number": number, "token": token} for service, number, token in rows}

    def join(
        self, branch_id: str, service_id: str, device: str, address: str, language: str = ""
    ) -> tuple[dict, bool]:
        """A ticket for a customer joining from their phone (``device``: the
        hash of its cookie), and whether it is new: a device with a ticket of
        the service still waiting or called gets that one back, not another.

        :class:`JoinRefused` when the branch or the service does not take it now,
        :class:`Throttled` when ``address`` has joined too often; nothing is
        issued then. Checked and issued in one transaction (on PostgreSQL under
        a lock per service), so two taps at once give one ticket and a daily
        cap is never passed.
        """
        source = throttle.address_key(address)
        with self.database.transaction() as db:
            db.lock_name("issue", branch_id, service_id)
            on = db.execute("SELECT remote_join FROM branches WHERE id = ?", [branch_id]).fetchone()
            if not (on and on[0]):
                raise JoinRefused("off")
            row = db.execute(
                "SELECT prefix, is_open, schedule, daily_cap FROM services "
                "WHERE branch_id = ? AND id = ? AND listed = 1",
                [branch_id, service_id],
            ).fetchone()
            if row is None:
                raise JoinRefused("unknown")
            held = db.execute(
                "SELECT id, number, display, public_token, service_id, day FROM tickets "
                "WHERE device = ? AND branch_id = ? AND service_id = ? AND status IN (?, ?) "
                "ORDER BY queued_at DESC",
                [device, branch_id, service_id, *ACTIVE],
            ).fetchone()
            if held is not None:
                keys = ("id", "number", "display", "public_token", "service_id", "day")
                return dict(zip(keys, held, strict=True)), False
            day, _ = branch_today(db, branch_id)
            issued = db.execute(
                "SELECT COUNT(*) FROM tickets WHERE branch_id = ? AND service_id = ? AND day = ? "
                "AND status != 'void'",
                [branch_id, service_id, day],
            ).fetchone()[0]
            service = {
                "is_open": bool(row[1]),
                "schedule": json.loads(row[2] or "{}"),
                "daily_cap": row[3],
            }
            state, opens_at = availability(service, now().astimezone(zone(db, branch_id)), issued)
            if not state.is_open:
                raise JoinRefused(state.status, opens_at)
            at, key = time.time(), f"{branch_id} {source}"
            wait = throttle.wait_s(throttle.level(db, JOIN_ADDRESS, key, at), JOIN_ADDRESS)
            if wait:
                raise Throttled("too many joins from this address", wait)
            throttle.add(db, JOIN_ADDRESS, key, at, cap=JOIN_ADDRESS.capacity)
            throttle.prune(db, at)
            ticket = issue(
                db, branch_id, service_id, row[0], "remote", device=device, language=language
            )
        return ticket, True
