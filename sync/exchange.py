"""What the sync daemon reads from and writes to the state DB.

Each verb is one short transaction, so the kiosk's tap never waits long for
the daemon, and a SIGKILL at any instant leaves the DB consistent: a ticket
is marked delivered only after the server answered for it.
"""

from __future__ import annotations

import json
import time

import sqlite_utils
from pydantic import ValidationError

from sync import clock, commands, protocol
from sync.state import transaction
from sync.tickets import boot_id, get_config, iso, now_utc, put_categories, set_config

FINAL_STATES = ("printed", "print_failed", "void")


def apply_server_config(db: sqlite_utils.Database, config: protocol.KioskConfig, etag: str) -> None:
    """The server's config becomes the kiosk's; services it dropped are unlisted."""
    with transaction(db):
        set_config(
            db,
            "branch",
            {
                "id": config.branch.id,
                "name": config.branch.name,
                "timezone": config.branch.timezone,
                "languages": config.branch.languages,
            },
        )
        set_config(
            db,
            "ticket",
            {**(get_config(db, "ticket", {}) or {}), "url_template": config.ticket_url_template},
        )
        set_config(db, "server_etag", etag)
        put_categories(db, [c.model_dump() for c in config.categories])
        db.execute("UPDATE services SET listed = 0")
        for position, service in enumerate(config.services):
            db["services"].upsert(
                {
                    "id": service.id,
                    "prefix": service.prefix,
                    "names": json.dumps(service.names, ensure_ascii=False),
                    "texts": json.dumps(service.texts, ensure_ascii=False),
                    "position": position,
                    "is_open": int(service.is_open),
                    "schedule": json.dumps(service.opening.to_json()),
                    "daily_cap": service.daily_cap,
                    "category": service.category,
                    "locations": json.dumps(service.location, ensure_ascii=False),
                    "listed": 1,
                },
                pk="id",
            )


def leased_remaining(db: sqlite_utils.Database, service_id: str, day: str) -> int:
    """Server-leased numbers not yet used (the reserve series does not count)."""
    return db.execute(
        "SELECT COALESCE(SUM(last - next + 1), 0) FROM leases "
        "WHERE service_id = ? AND day = ? AND source = 'server' AND next <= last",
        [service_id, day],
    ).fetchone()[0]


def add_lease(db: sqlite_utils.Database, lease: protocol.LeaseResponse) -> None:
    with transaction(db):
        db["leases"].insert(
            {
                "service_id": lease.service_id,
                "day": lease.day,
                "first": lease.first,
                "last": lease.last,
                "next": lease.first,
                "source": "server",
            }
        )


def pending(db: sqlite_utils.Database, limit: int) -> list[protocol.TicketIn]:
    """The oldest undelivered outbox rows whose ticket is final, in kiosk order."""
    rows = db.execute(
        f"""SELECT t.id, t.public_token, t.kiosk_seq, t.service_id, t.day, t.number, t.series,
                  t.display, t.language, t.issued_at, t.state, t.issued_mono_ns, t.boot_id,
                  t.time_source
           FROM outbox o JOIN tickets t ON t.id = o.ticket_id
           WHERE o.delivered_at IS NULL AND o.parked_reason IS NULL
             AND t.state IN {FINAL_STATES}
           ORDER BY t.kiosk_seq LIMIT ?""",
        [limit],
    ).fetchall()
    fields = (
        "id",
        "public_token",
        "kiosk_seq",
        "service_id",
        "day",
        "number",
        "series",
        "display",
        "language",
        "issued_at",
        "state",
        "issued_mono_ns",
        "boot_id",
        "time_source",
    )
    tickets = []
    for row in rows:
        values = dict(zip(fields, row, strict=True))
        try:
            tickets.append(protocol.TicketIn(**values))
        except ValidationError as exc:
            # a row no server would take (a damaged or hand-edited DB): parked and
            # shown, not sent (the server would refuse it) and not a crash every round
            fields_at_fault = ",".join(dict.fromkeys(str(e["loc"][0]) for e in exc.errors()))
            with transaction(db):
                db.execute(
                    "UPDATE outbox SET parked_reason = ? WHERE ticket_id = ? "
                    "AND delivered_at IS NULL",
                    [f"rejected:invalid:{fields_at_fault}"[:200], values["id"]],
                )
    return tickets


def record_results(db: sqlite_utils.Database, results: list[protocol.TicketResult]) -> int:
    """created/duplicate: delivered. rejected:<why>: parked, visible, never dropped."""
    parked = 0
    stamp = iso(now_utc())
    with transaction(db):
        for result in results:
            if result.result in ("created", "duplicate"):
                db.execute(
                    "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 "
                    "WHERE ticket_id = ? AND delivered_at IS NULL",
                    [stamp, result.id],
                )
            else:
                parked += 1
                db.execute(
                    "UPDATE outbox SET parked_reason = ?, attempts = attempts + 1 "
                    "WHERE ticket_id = ? AND delivered_at IS NULL",
                    [result.result[:200], result.id],
                )
    return parked


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    row = db.execute(
        "SELECT SUM(delivered_at IS NULL AND parked_reason IS NULL), "
        "SUM(parked_reason IS NOT NULL) FROM outbox"
    ).fetchone()
    return {"outbox": row[0] or 0, "parked": row[1] or 0}


def newest_outbox_id(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]


def counted_seq(db: sqlite_utils.Database) -> int:
    """The highest kiosk_seq up to which every own ticket is settled: delivered
    (the server counts it), parked or void (nobody counts it).

    The daemon pushes before it sends a heartbeat, one at a time, so the
    server's reply counted exactly the delivered ones. A ticket above this
    mark that the server already has (out of order, or a reply lost after the
    server applied it) is counted twice until the next heartbeat: too many
    rather than too few, so a daily cap is never passed.
    """
    first_open = db.execute(
        "SELECT MIN(t.kiosk_seq) FROM tickets t JOIN outbox o ON o.ticket_id = t.id "
        "WHERE o.delivered_at IS NULL AND o.parked_reason IS NULL AND t.state != 'void'"
    ).fetchone()[0]
    if first_open is not None:
        return first_open - 1
    return db.execute("SELECT COALESCE(MAX(kiosk_seq), 0) FROM tickets").fetchone()[0]


def apply_heartbeat(
    db: sqlite_utils.Database, reply: protocol.HeartbeatResponse, mono_ns: int | None = None
) -> None:
    """The server's queue becomes the kiosk's snapshot, stamped with what of the
    kiosk's own tickets it counted and when it arrived (``mono_ns``, the
    monotonic clock when the reply came, default now); the kiosk's clock is
    checked against the server's from the same moment (:mod:`sync.clock`)."""
    received = time.monotonic_ns() if mono_ns is None else mono_ns
    with transaction(db):
        clock.remember_server_time(db, reply.server_time, received)
        db.execute("DELETE FROM queue_snapshot")
        listed = {r[0] for r in db.execute("SELECT id FROM services")}
        counted = counted_seq(db)
        for service_id, queue in reply.queue.items():
            if service_id in listed:
                db["queue_snapshot"].insert(
                    {
                        "service_id": service_id,
                        "waiting": queue.waiting,
                        "estimated_wait_s": queue.estimated_wait_s,
                        "issued": queue.issued,
                        "updated_at": reply.server_time,
                        "counted_seq": counted,
                        "wait_per_person_s": queue.wait_per_person_s,
                        "received_mono_ns": received,
                        "received_boot_id": boot_id(),
                    }
                )
        commands.store(db, reply.commands)
