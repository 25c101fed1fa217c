"""Server commands in the state DB: stored by the sync daemon from a heartbeat
reply, carried out by the kiosk, their results sent back with a later heartbeat.

A command is done at most once. ``reload``/``reboot``/``sync_now`` are marked
done before they run (a reboot is never repeated by the kiosk that comes back
from it). ``print_ticket`` (a ticket staff gave at a counter) is marked
*handed* just before its bytes go to the printer, like the kiosk's own
tickets: a kiosk killed before that prints it after its restart; one killed
after it never prints it again and answers ``unknown:...`` (the paper may or
may not have come out), so staff are told rather than a customer getting two.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils
from pydantic import ValidationError

from sync import protocol
from sync.state import iso, now_utc, transaction

log = logging.getLogger("vuoro.sync.commands")

PRINT_TICKET = "print_ticket"
#: commands this kiosk carries out beyond the operator's three: said in the heartbeat
ACCEPTS = [PRINT_TICKET]
#: a counter ticket not printed within this long is skipped: the customer has
#: long been told their number at the counter, and paper now would puzzle people
PRINT_MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class PendingCommand:
    id: str
    kind: str
    data: dict = field(default_factory=dict)
    received_at: str = ""


def store(db: sqlite_utils.Database, reply_commands: list) -> None:
    """The commands of a heartbeat reply, inside the caller's transaction.

    A kind this kiosk does not know, or a ``print_ticket`` whose data does not
    check, is logged and stored already done as ``skipped:<why>`` (the next
    heartbeat tells the server); it never stops the reply's other parts.
    """
    received = iso(now_utc())
    for command in reply_commands:
        if isinstance(command, protocol.UnknownCommand):
            log.warning("server command %r skipped: %s", command.id, command.reason)
            if command.id:
                _insert_done(db, command.id, "unknown", received, f"skipped:{command.reason}")
            continue
        data: dict = {}
        if command.kind == PRINT_TICKET:
            try:
                data = protocol.PrintTicket.model_validate(command.data).model_dump()
            except ValidationError as exc:
                why = _invalid_fields(exc)
                log.warning("print_ticket %s skipped: %s", command.id, why)
                _insert_done(db, command.id, command.kind, received, f"skipped:{why}")
                continue
        stored = db.execute(
            "INSERT OR IGNORE INTO commands (id, kind, received_at, data) VALUES (?, ?, ?, ?)",
            [command.id, command.kind, received, json.dumps(data, ensure_ascii=False)],
        ).rowcount
        if not stored:  # a server whose database was replaced counts its ids again
            log.warning(
                "server command %s (%s): that id was seen before; ignored", command.id, command.kind
            )


def _invalid_fields(exc: ValidationError) -> str:
    fields = dict.fromkeys(str(e["loc"][0]) if e["loc"] else "data" for e in exc.errors())
    return ("invalid:" + ",".join(fields))[:90]


def _insert_done(
    db: sqlite_utils.Database, command_id: str, kind: str, received: str, result: str
) -> None:
    db["commands"].insert(
        {
            "id": command_id,
            "kind": kind,
            "received_at": received,
            "done_at": received,
            "result": result[:100],
        },
        ignore=True,
    )


def take(db: sqlite_utils.Database, kinds: tuple[str, ...] | None = None) -> list[PendingCommand]:
    """Commands not yet taken (of ``kinds``, default all), marked taken
    (``done_at``) in the same transaction."""
    where = "done_at IS NULL"
    params: list[str] = []
    if kinds is not None:
        where += f" AND kind IN ({', '.join('?' * len(kinds))})"
        params = list(kinds)
    pending = f"SELECT id, kind, data, received_at FROM commands WHERE {where} ORDER BY rowid"
    if not db.execute(pending, params).fetchone():
        return []  # the usual case, every second on the UI thread: a read, no write lock
    with transaction(db):
        rows = db.execute(pending, params).fetchall()
        db.execute(f"UPDATE commands SET done_at = ? WHERE {where}", [iso(now_utc()), *params])
    taken = []
    for command_id, kind, data, received in rows:
        try:
            parsed = json.loads(data or "{}")
        except ValueError:
            parsed = {}
        taken.append(
            PendingCommand(command_id, kind, parsed if isinstance(parsed, dict) else {}, received)
        )
    return taken


def too_old(command: PendingCommand, now: datetime | None = None) -> bool:
    """Received longer than :data:`PRINT_MAX_AGE` ago (a clock set back since
    counts as fresh: better late paper than none)."""
    try:
        received = datetime.fromisoformat(command.received_at)
    except ValueError:
        return False
    return (now or now_utc()) - received > PRINT_MAX_AGE


def begin_print(db: sqlite_utils.Database, command_id: str) -> bool:
    """Record that the command's bytes go to the printer now. False: it was
    handed before, or has ended (it must not print a second time)."""
    with transaction(db):
        return (
            db.execute(
                "UPDATE commands SET handed_at = ? WHERE id = ? AND handed_at IS NULL "
                "AND result IS NULL",
                [iso(now_utc()), command_id],
            ).rowcount
            == 1
        )


def finish(db: sqlite_utils.Database, command_id: str, result: str) -> None:
    """How the command ended; the next heartbeat carries it to the server."""
    result = "".join(ch if ch.isprintable() else " " for ch in result)
    with transaction(db):
        db.execute(
            "UPDATE commands SET result = ?, done_at = COALESCE(done_at, ?) WHERE id = ? "
            "AND result IS NULL",
            [result[:100], iso(now_utc()), command_id],
        )


@dataclass
class Settled:
    again: list[str]  # taken but never handed to the printer: carried out again
    cut_short: list[str]  # handed, no outcome: never printed again


def settle_interrupted(db: sqlite_utils.Database) -> Settled:
    """At the kiosk's start (one kiosk process per state directory): counter
    tickets the last run took but never handed to the printer are taken again;
    those it handed without an outcome end as ``unknown:...``."""
    with transaction(db):
        again = [
            r[0]
            for r in db.execute(
                "SELECT id FROM commands WHERE kind = ? AND done_at IS NOT NULL "
                "AND handed_at IS NULL AND result IS NULL",
                [PRINT_TICKET],
            )
        ]
        cut_short = [
            r[0]
            for r in db.execute(
                "SELECT id FROM commands WHERE kind = ? AND handed_at IS NOT NULL "
                "AND result IS NULL",
                [PRINT_TICKET],
            )
        ]
        db.execute(
            "UPDATE commands SET done_at = NULL WHERE kind = ? AND done_at IS NOT NULL "
            "AND handed_at IS NULL AND result IS NULL",
            [PRINT_TICKET],
        )
        db.execute(
            "UPDATE commands SET result = 'unknown:the kiosk stopped while printing', "
            "done_at = COALESCE(done_at, ?) WHERE kind = ? AND handed_at IS NOT NULL "
            "AND result IS NULL",
            [iso(now_utc()), PRINT_TICKET],
        )
    return Settled(again, cut_short)


def unreported(db: sqlite_utils.Database) -> list[protocol.CommandResult]:
    """Results the server has not heard yet, oldest first, at most a heartbeat's worth."""
    rows = db.execute(
        "SELECT id, result FROM commands WHERE result IS NOT NULL AND reported_at IS NULL "
        "ORDER BY done_at, rowid LIMIT ?",
        [protocol.MAX_RESULTS],
    ).fetchall()
    results, unsayable = [], []
    for command_id, result in rows:
        try:
            results.append(protocol.CommandResult(id=command_id, result=result))
        except ValidationError:  # nothing a server could take: never tried again
            log.warning("command %r: result %r not reportable", command_id, result)
            unsayable.append(command_id)
    mark_reported(db, unsayable)
    return results


def mark_reported(db: sqlite_utils.Database, ids: list[str]) -> None:
    """The server answered the heartbeat that carried these results."""
    if not ids:
        return
    at = iso(now_utc())
    with transaction(db):
        for command_id in ids:
            db.execute("UPDATE commands SET reported_at = ? WHERE id = ?", [at, command_id])
