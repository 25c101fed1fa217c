"""Calling: the next ticket (or a chosen one) to a counter, and the queue per service."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from server import estimate, events
from server.storage.common import CounterBusy, Rejected, branch_today, iso, now
from server.storage.database import Database, Tx
from sync import protocol

#: How long a reason for calling a ticket out of turn may be (characters)
REASON_MAX = 200
#: How many waiting tickets of one service the counter screen lists
LISTED_MAX = 50
#: text-direction embeddings, overrides and isolates: a reason cannot turn a report around
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class CounterPaused(Rejected):
    """The counter is on a break: it calls nobody until its staff come back."""

    def __init__(self, counter: str) -> None:
        super().__init__(f"counter {counter} is paused")
        self.counter = counter


def counter_state(db: Tx, branch_id: str, counter: str) -> str:
    """open, paused or closed: the counter's newest ``counter_log`` row (open if none)."""
    row = db.execute(
        "SELECT state FROM counter_log WHERE branch_id = ? AND counter = ? "
        "ORDER BY id DESC LIMIT 1",
        [branch_id, counter],
    ).fetchone()
    return row[0] if row else "open"


def one_line(text: str) -> str:
    """Typed text as one line: control characters and line breaks become
    spaces, text-direction overrides go (emoji joiners stay), runs of spaces
    become one. Also for a call-back's reason (server.storage.callbacks)."""
    kept = (
        " " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else "" if c in _BIDI else c
        for c in text
    )
    return " ".join("".join(kept).split())


def clean_reason(reason: str) -> str:
    """A reason as stored: one line (:func:`one_line`), 1 to REASON_MAX
    characters; Rejected otherwise."""
    text = one_line(reason)
    if not text:
        raise Rejected("a reason is needed to call a ticket out of turn")
    if len(text) > REASON_MAX:
        raise Rejected(f"a reason is at most {REASON_MAX} characters")
    return text


class Calling:
    database: Database

    def queue(self, branch_id: str) -> dict[str, protocol.QueueState]:
        """Waiting per service, and how long a customer arriving now would wait."""
        with self.database.reading() as db:
            today, _ = branch_today(db, branch_id)
            rows = db.execute(
                "SELECT s.id, COUNT(t.id) FROM services s LEFT JOIN tickets t "
                "ON t.branch_id = s.branch_id AND t.queue_id = s.id AND t.day = ? "
                "AND t.status = 'waiting' WHERE s.branch_id = ? AND s.listed = 1 GROUP BY s.id",
                [today, branch_id],
            ).fetchall()
            issued = dict(
                db.execute(
                    "SELECT service_id, COUNT(*) FROM tickets WHERE branch_id = ? AND day = ? "
                    "AND status != 'void' GROUP BY service_id",
                    [branch_id, today],
                ).fetchall()
            )
            rates = self.estimates(db, branch_id)
        waiting = dict(rows)
        return {
            service: protocol.QueueState(
                waiting=ahead,
                estimated_wait_s=estimate.wait_in_branch(service, ahead, rates, waiting),
                issued=issued.get(service, 0),
                wait_per_person_s=round(estimate.per_person_s(service, rates), 1),
            )
            for service, ahead in rows
        }

    def call_next(
        self,
        branch_id: str,
        counter: str,
        services: list[str] | None = None,
        finish: str = "",
        staff_id: int | None = None,
    ) -> dict | None:
        """The longest fair wait among ``services`` goes to ``counter``; a service
        with a higher ``priority`` goes first while it has anyone waiting.

        A counter calls one ticket at a time: while one is still called there,
        :class:`CounterBusy` — unless ``finish`` ("served" or "no_show") says
        how that one ended, which is then recorded first.

        One transaction, the counter's own ticket checked inside it under the
        counter's lock, the ticket taken with a row lock that other callers
        skip: two counters calling at the same instant (on any worker) never
        get the same ticket, and two presses at one counter never call two.
        """
        if finish not in ("", "served", "no_show"):
            raise Rejected(f"a called ticket is finished as served or no_show, not {finish!r}")
        with self.database.transaction() as db:
            db.lock_name("counter", branch_id, counter)
            if counter_state(db, branch_id, counter) == "paused":
                raise CounterPaused(counter)
            still = db.execute(
                "SELECT id, display, queue_id FROM tickets WHERE branch_id = ? AND counter = ? "
                "AND status = 'called' ORDER BY called_at",
                [branch_id, counter],
            ).fetchall()
            if still and not finish:
                raise CounterBusy(counter, still[-1][1])
            for ticket_id, _, queue_id in still:
                db.execute(
                    "UPDATE tickets SET status = ?, finished_at = ? WHERE id = ?",
                    [finish, iso(now()), ticket_id],
                )
                events.record(
                    db, branch_id, queue_id, events.STATUS, ticket=ticket_id, status=finish
                )
            today, _ = branch_today(db, branch_id)
            clause, args = "", []
            if services:
                clause = f" AND queue_id IN ({', '.join('?' * len(services))})"
                args = list(services)
            row = db.execute(
                "SELECT t.id, t.display, t.queue_id FROM tickets t JOIN services s "
                "ON s.branch_id = t.branch_id AND s.id = t.queue_id "
                "WHERE t.branch_id = ? AND t.day = ? "
                f"AND t.status = 'waiting'{clause.replace('queue_id', 't.queue_id')} "
                "ORDER BY s.priority DESC, t.queued_at, t.kiosk_seq NULLS FIRST, t.id LIMIT 1"
                + db.dialect.skip_locked,
                [branch_id, today, *args],
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE tickets SET status = 'called', counter = ?, called_at = ?, staff_id = ? "
                "WHERE id = ?",
                [counter, iso(now()), staff_id, row[0]],
            )
            events.record(
                db, branch_id, row[2], events.CALLED, ticket=row[0], number=row[1], counter=counter
            )
        return {"id": row[0], "number": row[1], "service_id": row[2], "counter": counter}

    def call_ticket(
        self,
        branch_id: str,
        counter: str,
        ticket_id: str,
        reason: str,
        staff_id: int | None = None,
    ) -> dict:
        """A chosen waiting ticket of today to ``counter``, out of turn, with the
        reason why (kept in ``tickets.call_reason`` for the reports).

        The same locks as :meth:`call_next`: the counter's, and the ticket's row,
        so another counter taking it at the same instant makes this a Rejected.
        """
        reason = clean_reason(reason)
        if not isinstance(ticket_id, str) or not 1 <= len(ticket_id) <= 64:
            raise Rejected("no such waiting ticket")
        with self.database.transaction() as db:
            db.lock_name("counter", branch_id, counter)
            if counter_state(db, branch_id, counter) == "paused":
                raise CounterPaused(counter)
            still = db.execute(
                "SELECT display FROM tickets WHERE branch_id = ? AND counter = ? "
                "AND status = 'called' ORDER BY called_at DESC LIMIT 1",
                [branch_id, counter],
            ).fetchone()
            if still:
                raise CounterBusy(counter, still[0])
            today, _ = branch_today(db, branch_id)
            row = db.execute(
                "SELECT t.id, t.display, t.queue_id FROM tickets t WHERE t.id = ? "
                "AND t.branch_id = ? AND t.day = ? AND t.status = 'waiting'"
                + db.dialect.skip_locked,
                [ticket_id, branch_id, today],
            ).fetchone()
            if row is None:
                raise Rejected("no such waiting ticket")
            db.execute(
                "UPDATE tickets SET status = 'called', counter = ?, called_at = ?, staff_id = ?, "
                "call_reason = ? WHERE id = ? AND status = 'waiting'",
                [counter, iso(now()), staff_id, reason, row[0]],
            )
            events.record(
                db, branch_id, row[2], events.CALLED, ticket=row[0], number=row[1], counter=counter
            )
        return {"id": row[0], "number": row[1], "service_id": row[2], "counter": counter}

    def waiting_tickets(self, branch_id: str, services: list[str] | None) -> dict[str, list[dict]]:
        """Today's waiting tickets of ``services`` (all when None), each list in
        calling order (at most LISTED_MAX): id, number, when it joined the queue,
        seconds waited so far, where it came from, transfers. A place for
        appointments and pre-question answers (``notes``) when they exist."""
        with self.database.reading() as db:
            today, _ = branch_today(db, branch_id)
            clause, args = "", []
            if services:
                clause = f" AND queue_id IN ({', '.join('?' * len(services))})"
                args = list(services)
            rows = db.execute(
                "SELECT id, display, queue_id, queued_at, origin, transfers FROM tickets "
                f"WHERE branch_id = ? AND day = ? AND status = 'waiting'{clause} "
                "ORDER BY queued_at, kiosk_seq NULLS FIRST, id",
                [branch_id, today, *args],
            ).fetchall()
        moment = now()
        lists: dict[str, list[dict]] = {}
        for ticket_id, number, queue, queued_at, origin, transfers in rows:
            listed = lists.setdefault(queue, [])
            if len(listed) >= LISTED_MAX:
                continue
            waited = (moment - datetime.fromisoformat(queued_at)).total_seconds()
            listed.append(
                {
                    "id": ticket_id,
                    "number": number,
                    "waited_s": max(round(waited), 0),
                    "origin": origin,
                    "transfers": transfers,
                    "notes": [],  # appointments, pre-question answers: none yet
                }
            )
        return lists
