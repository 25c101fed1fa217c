"""Counters as staff work them: opened with the services they serve today,
paused for a break, closed at logout; and tickets given at a counter.

Each change is a ``counter_log`` row: the newest row per counter is its state
now, and the rows of a day are what reports count staffed counters from.
"""

from __future__ import annotations

import json

from server import events
from server.storage import issuing
from server.storage.common import Rejected, iso, now
from server.storage.database import Database, Tx

STATES = ("open", "paused", "closed")


class Desks:
    database: Database

    def set_counter_state(
        self,
        branch_id: str,
        counter: str,
        state: str,
        staff_id: int | None = None,
        services: list[str] | None = None,
    ) -> None:
        """Record that ``counter`` is now open (serving ``services``), paused or closed."""
        if state not in STATES:
            raise Rejected(f"a counter is {', '.join(STATES)}, not {state!r}")
        with self.database.transaction() as db:
            self.log_counter(db, branch_id, counter, state, staff_id, services)

    @staticmethod
    def log_counter(
        db: Tx,
        branch_id: str,
        counter: str,
        state: str,
        staff_id: int | None = None,
        services: list[str] | None = None,
    ) -> None:
        """The same, inside a transaction of the caller's (a login, a logout)."""
        db.insert(
            "counter_log",
            {
                "branch_id": branch_id,
                "counter": counter,
                "staff_id": staff_id,
                "state": state,
                "services": json.dumps(services or []),
                "at": iso(now()),
            },
        )
        events.record(db, branch_id, None, events.COUNTER, counter=counter, state=state)

    def counter_states(self, branch_id: str) -> dict[str, dict]:
        """Every counter ever opened in the branch: its state, who, which services, since when."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT l.counter, l.state, l.staff_id, l.services, l.at FROM counter_log l "
                "JOIN (SELECT counter, MAX(id) AS id FROM counter_log WHERE branch_id = ? "
                "GROUP BY counter) newest ON newest.id = l.id ORDER BY l.counter",
                [branch_id],
            ).fetchall()
        return {
            counter: {
                "state": state,
                "staff_id": staff_id,
                "services": json.loads(services),
                "since": at,
            }
            for counter, state, staff_id, services, at in rows
        }

    def counter_log(self, branch_id: str, since: str, until: str) -> list[dict]:
        """The changes between two ISO times, oldest first, with the state each
        counter was in at ``since`` (so a counter opened yesterday counts today)."""
        with self.database.reading() as db:
            before = db.execute(
                "SELECT l.counter, l.state, l.staff_id, l.services, l.at FROM counter_log l "
                "JOIN (SELECT counter, MAX(id) AS id FROM counter_log WHERE branch_id = ? "
                "AND at < ? GROUP BY counter) newest ON newest.id = l.id",
                [branch_id, since],
            ).fetchall()
            during = db.execute(
                "SELECT counter, state, staff_id, services, at FROM counter_log "
                "WHERE branch_id = ? AND at >= ? AND at < ? ORDER BY id",
                [branch_id, since, until],
            ).fetchall()
        return [
            {
                "counter": counter,
                "state": state,
                "staff_id": staff_id,
                "services": json.loads(services),
                "at": max(at, since),
            }
            for counter, state, staff_id, services, at in [*before, *during]
        ]

    def issue_at_counter(self, branch_id: str, service_id: str, staff_id: int | None) -> dict:
        """A ticket for a customer at the counter (the kiosk could not serve them):
        a number from the day's counter that no kiosk lease holds, at the end of
        the service's queue (:func:`issuing.issue`, as a remote join's). Its id,
        number, public token and service."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT prefix FROM services WHERE branch_id = ? AND id = ?",
                [branch_id, service_id],
            ).fetchone()
            if row is None:
                raise Rejected(f"no service {service_id!r}")
            return issuing.issue(db, branch_id, service_id, row[0], "counter", staff_id=staff_id)
