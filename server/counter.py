"""What a counter does: the ticket at it, calling, starting, serving,
no-show (after a grace time, with a one-tap undo), transfer, break, a ticket
given at the counter, and which counter and services a session works.

Each action is read and changed in one transaction under the counter's lock:
a second click, or another action at once, sees the ticket as the first one
left it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from catalogue import LANGUAGES as CATALOGUE_LANGUAGES
from catalogue import N_, translator
from server import events
from server.staff import Staff, StaffMember, token_hash
from server.storage import CounterBusy, Rejected, Storage, Tx, calling, iso, now

#: seconds after a call before no-show may be pressed (``$VUORO_NO_SHOW_GRACE_S``)
NO_SHOW_GRACE_S = 30.0
#: seconds a no-show can be undone with one tap
UNDO_S = 10.0
COUNTER_MAX = 20  # characters in a counter's name


class Counter:
    """A staff member's counter, on behalf of their session."""

    def __init__(self, storage: Storage, staff: Staff | None = None) -> None:
        self.storage = storage
        self.staff = staff or Staff(storage)

    def current(self, member: StaffMember) -> dict | None:
        """The ticket at this counter now (called or being served)."""
        with self.storage.reading() as db:
            return self._current(db, member)

    @staticmethod
    def _current(db: Tx, member: StaffMember) -> dict | None:
        row = db.execute(
            "SELECT id, display, queue_id, status, called_at, origin, transfers, call_reason "
            "FROM tickets WHERE branch_id = ? "
            "AND counter = ? AND status IN ('called', 'serving') ORDER BY called_at DESC "
            "LIMIT 1",
            [member.branch_id, member.counter],
        ).fetchone()
        keys = (
            "id",
            "number",
            "service_id",
            "status",
            "called_at",
            "origin",
            "transfers",
            "call_reason",
        )
        return None if row is None else dict(zip(keys, row, strict=True))

    def open_counter(self, member: StaffMember) -> None:
        """A login opens the account's counter (its services) until the staff
        member chooses another: reports count it as staffed from now."""
        self.storage.set_counter_state(
            member.branch_id, member.counter, "open", member.id, member.services
        )

    def choose_counter(
        self,
        member: StaffMember,
        token: str,
        counter: str,
        services: list[str],
        language: str | None,
    ) -> StaffMember:
        """This session works ``counter`` for ``services`` from now, in
        ``language`` (kept in the account; None: the browser's). The old
        counter closes (unless somebody else works it), the new one opens."""
        counter = " ".join(counter.split())
        if not counter or len(counter) > COUNTER_MAX or not counter.isprintable():
            raise Rejected(N_("A counter is named by 1 to 20 printable characters."))
        if language is not None and language not in CATALOGUE_LANGUAGES:
            raise Rejected(N_("Choose a language from the list."))
        services = list(dict.fromkeys(services))
        if not services:
            raise Rejected(N_("Choose at least one service for this counter."))
        with self.storage.transaction() as db:
            known = {
                r[0]
                for r in db.execute(
                    "SELECT id FROM services WHERE branch_id = ?", [member.branch_id]
                )
            }
            if not set(services) <= known:
                raise Rejected(N_("Choose services from the list."))
            db.lock_name("counter", member.branch_id, member.counter)
            if counter != member.counter:
                held = self._current(db, member)
                if held is not None:
                    raise Rejected(N_("Finish or transfer your ticket before changing counters."))
                if not self._others_at(db, member, member.counter):
                    self.storage.log_counter(
                        db, member.branch_id, member.counter, "closed", member.id
                    )
            db.execute(
                "UPDATE sessions SET counter = ?, services = ? WHERE token_hash = ?",
                [counter, json.dumps(services), token_hash(token)],
            )
            db.execute("UPDATE staff SET language = ? WHERE id = ?", [language, member.id])
            self.storage.log_counter(db, member.branch_id, counter, "open", member.id, services)
        chosen = self.staff.session(token)
        if chosen is None:
            raise Rejected(N_("Your session ended; log in again."))
        return chosen

    @staticmethod
    def _others_at(db: Tx, member: StaffMember, counter: str) -> list[str]:
        """Who else has a live session on ``counter`` of the branch."""
        rows = db.execute(
            "SELECT DISTINCT s.username FROM sessions x JOIN staff s ON s.id = x.staff_id "
            "WHERE s.branch_id = ? AND x.expires_at > ? AND s.id != ? "
            "AND COALESCE(x.counter, s.counter) = ? ORDER BY s.username",
            [member.branch_id, iso(now()), member.id, counter],
        ).fetchall()
        return [r[0] for r in rows]

    def known_counters(self, branch_id: str) -> list[str]:
        """The branch's counters to choose from: those with a place, those
        opened before, and the accounts' usual ones."""
        with self.storage.reading() as db:
            found = {
                r[0]
                for query in (
                    "SELECT counter FROM counter_locations WHERE branch_id = ?",
                    "SELECT DISTINCT counter FROM counter_log WHERE branch_id = ?",
                    "SELECT DISTINCT counter FROM staff WHERE branch_id = ?",
                )
                for r in db.execute(query, [branch_id])
            }
        return sorted(found, key=lambda c: (len(c), c))[:200]

    def sharing(self, member: StaffMember) -> list[str]:
        """Others logged in at this member's counter (two people, one counter)."""
        with self.storage.reading() as db:
            return self._others_at(db, member, member.counter)

    def close_counter(self, member: StaffMember) -> None:
        """At logout: the counter closes, unless somebody else still works it."""
        with self.storage.transaction() as db:
            if not self._others_at(db, member, member.counter):
                self.storage.log_counter(db, member.branch_id, member.counter, "closed", member.id)

    def counter_state(self, member: StaffMember) -> str:
        """open or paused (a counter nobody opened yet counts as open)."""
        with self.storage.reading() as db:
            return calling.counter_state(db, member.branch_id, member.counter)

    def last_no_show(self, member: StaffMember) -> dict | None:
        """The ticket this counter marked a no-show within UNDO_S, which one tap brings back."""
        since = iso(now() - timedelta(seconds=UNDO_S))
        with self.storage.reading() as db:
            row = db.execute(
                "SELECT id, display, finished_at FROM tickets WHERE branch_id = ? AND counter = ? "
                "AND status = 'no_show' AND finished_at >= ? ORDER BY finished_at DESC LIMIT 1",
                [member.branch_id, member.counter, since],
            ).fetchone()
        if row is None:
            return None
        left = UNDO_S - (now() - datetime.fromisoformat(row[2])).total_seconds()
        return {"id": row[0], "number": row[1], "undo_s": max(round(left), 0)}

    def act(
        self,
        member: StaffMember,
        action: str,
        service: str = "",
        ticket: str = "",
        reason: str = "",
        language: str | None = None,
    ) -> str:
        """call, call_ticket, recall, start, served, no_show, undo, transfer,
        pause, resume, issue: a message for the counter."""
        return self.work(member, action, service, ticket, reason, language).message

    def work(
        self,
        member: StaffMember,
        action: str,
        service: str = "",
        ticket: str = "",
        reason: str = "",
        language: str | None = None,
    ) -> Outcome:
        """What :meth:`act` does, with what the counter screen shows besides the
        message: whether it worked, and a ticket given at the counter."""
        tr = translator(language).gettext
        try:
            return self._work(member, action, service, ticket, reason, tr)
        except calling.CounterPaused:
            return Outcome(
                tr("You are on a break: press Back from break to call customers."), False
            )
        except CounterBusy as exc:
            return Outcome(tr("{number} is still called here").format(number=exc.number), False)
        except Rejected as exc:
            return Outcome(tr(str(exc)), False)

    def _work(self, member, action, service, ticket, reason, tr) -> Outcome:
        if action == "call":
            called = self.storage.call_next(
                member.branch_id, member.counter, member.services or None, staff_id=member.id
            )
            if called:
                return Outcome(tr("{number} called").format(number=called["number"]))
            others = self._waiting_elsewhere(member)
            if not others:
                return Outcome(tr("nobody is waiting"), False)
            return Outcome(
                tr("Nobody is waiting for your services; {count} waiting for others.").format(
                    count=others
                ),
                False,
            )
        if action == "call_ticket":
            called = self.storage.call_ticket(
                member.branch_id, member.counter, ticket, reason, staff_id=member.id
            )
            return Outcome(tr("{number} called").format(number=called["number"]))
        if action in ("pause", "resume"):
            state = "paused" if action == "pause" else "open"
            self.storage.set_counter_state(
                member.branch_id, member.counter, state, member.id, member.services
            )
            if state == "paused":
                return Outcome(tr("On a break: nobody is called to this counter."))
            return Outcome(tr("Back at the counter."))
        if action == "issue":
            return self._issue(member, service, tr)
        if action == "undo":
            return self._undo(member, tr)
        return self._change(member, action, service, tr)

    def _waiting_elsewhere(self, member: StaffMember) -> int:
        queue = self.storage.queue(member.branch_id)
        mine = set(member.services or queue)
        return sum(state.waiting for service, state in queue.items() if service not in mine)

    def _issue(self, member: StaffMember, service: str, tr) -> Outcome:
        """A number for a customer at the counter; printed on a kiosk of the
        branch where one has a printer, else given by hand."""
        if not service or len(service) > 64:
            raise Rejected(N_("Choose a service for the ticket."))
        given = self.storage.issue_at_counter(member.branch_id, service, member.id)
        printer = getattr(self.storage, "print_at_kiosk", None)
        kiosk = printer(member.branch_id, given["id"]) if printer else None
        if kiosk:
            said = tr("Counter ticket {number}: printed at {kiosk}.")
        else:
            said = tr("Counter ticket {number}: no kiosk printer, give the number by hand.")
        return Outcome(
            said.format(number=given["display"], kiosk=kiosk or ""),
            issued={"number": given["display"], "service_id": service, "printed_at": kiosk},
        )

    def _undo(self, member: StaffMember, tr) -> Outcome:
        """The no-show of the last few seconds was a slip: the ticket is called here again."""
        with self.storage.transaction() as db:
            db.lock_name("counter", member.branch_id, member.counter)
            if self._current(db, member) is not None:
                raise Rejected(N_("Nothing to undo: a ticket is at this counter now."))
            since = iso(now() - timedelta(seconds=UNDO_S))
            row = db.execute(
                "SELECT id, display, queue_id FROM tickets WHERE branch_id = ? AND counter = ? "
                "AND status = 'no_show' AND finished_at >= ? ORDER BY finished_at DESC LIMIT 1",
                [member.branch_id, member.counter, since],
            ).fetchone()
            if row is None:
                raise Rejected(N_("Nothing to undo: the time for it has passed."))
            db.execute(
                "UPDATE tickets SET status = 'called', finished_at = NULL WHERE id = ?", [row[0]]
            )
            events.record(
                db,
                member.branch_id,
                row[2],
                events.STATUS,
                ticket=row[0],
                status="called",
                counter=member.counter,
            )
        return Outcome(tr("{number} is back at this counter.").format(number=row[1]))

    def _change(self, member: StaffMember, action: str, service: str, tr) -> Outcome:
        changes = {
            "recall": ("called_at = ?", [iso(now())]),
            "start": ("status = 'serving', started_at = ?", [iso(now())]),
            "served": ("status = 'served', finished_at = ?", [iso(now())]),
            "no_show": ("status = 'no_show', finished_at = ?", [iso(now())]),
        }
        said = {
            "recall": N_("{number}: recall"),
            "start": N_("{number}: start"),
            "served": N_("{number}: served"),
            "no_show": N_("{number}: no show"),
        }
        with self.storage.transaction() as db:
            # read in the transaction that changes it, under the counter's lock: a
            # second click, or another action at once, sees the ticket as the
            # first one left it
            db.lock_name("counter", member.branch_id, member.counter)
            current = self._current(db, member)
            if current is None:
                return Outcome(tr("no ticket at this counter"), False)
            if action == "transfer":
                if not db.execute(
                    "SELECT 1 FROM services WHERE branch_id = ? AND id = ?",
                    [member.branch_id, service],
                ).fetchone():
                    raise Rejected(f"no service {service!r}")
                # back in the queue of another service, with its original place (queued_at)
                db.execute(
                    "UPDATE tickets SET queue_id = ?, status = 'waiting', counter = NULL, "
                    "called_at = NULL, transfers = transfers + 1 WHERE id = ?",
                    [service, current["id"]],
                )
                events.record(
                    db,
                    member.branch_id,
                    service,
                    events.STATUS,
                    ticket=current["id"],
                    status="waiting",
                    moved_from=current["service_id"],
                )
                return Outcome(
                    tr("{number} moved to {service}").format(
                        number=current["number"], service=service
                    )
                )
            if action not in changes:
                raise Rejected(f"unknown action {action!r}")
            if action == "no_show":
                wait = no_show_grace_s() - seconds_since(current["called_at"])
                if wait > 0:
                    return Outcome(
                        tr(
                            "Too soon for a no-show: give {number} {seconds} s more to come."
                        ).format(number=current["number"], seconds=math.ceil(wait)),
                        False,
                    )
            sql, args = changes[action]
            db.execute(f"UPDATE tickets SET {sql} WHERE id = ?", [*args, current["id"]])
            if action == "recall":
                kind, data = events.CALLED, {"number": current["number"], "recall": True}
            else:
                kind, data = events.STATUS, {"status": {"start": "serving"}.get(action, action)}
            data |= {"ticket": current["id"], "counter": member.counter}
            events.record(db, member.branch_id, current["service_id"], kind, **data)
        return Outcome(tr(said[action]).format(number=current["number"]))


@dataclass(frozen=True)
class Outcome:
    """What a counter action did: its message, whether it worked, and a
    ticket given at the counter (number, service, kiosk that printed it)."""

    message: str
    ok: bool = True
    issued: dict | None = None


def no_show_grace_s() -> float:
    """Seconds after a call (or recall) before no-show may be pressed: the
    customer may still be walking over. ``$VUORO_NO_SHOW_GRACE_S`` (server-wide),
    else NO_SHOW_GRACE_S."""
    try:
        value = float(os.environ.get("VUORO_NO_SHOW_GRACE_S", NO_SHOW_GRACE_S))
    except ValueError:
        return NO_SHOW_GRACE_S
    return min(max(value, 0.0), 3600.0) if math.isfinite(value) else NO_SHOW_GRACE_S


def seconds_since(moment: str | None) -> float:
    """Seconds since an ISO time (a long time when there is none)."""
    if not moment:
        return math.inf
    return (now() - datetime.fromisoformat(moment)).total_seconds()
