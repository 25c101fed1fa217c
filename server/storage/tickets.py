"""A ticket as its holder sees it: place, estimate, feedback, cancelling; and the
parked tickets staff place by hand."""

from __future__ import annotations

import bisect
import json
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from server import estimate, events
from server.storage.common import _json, branch_today, iso, now
from server.storage.database import Database
from server.storage.notify import _remove

POSITION_TTL_S = 1.0


class Tickets:
    database: Database
    _queues: dict[tuple[str, str, str], tuple[float, list[str]]]
    _ties: dict[tuple[str, str, str, str], tuple[float, list[tuple[int, str]]]]
    _positions_epoch = 0  # counts forget_positions(): a refill older than one is not kept

    def ticket_by_token(self, token: str) -> dict | None:
        """The public view of a ticket: what its holder may see, nothing more.

        Every phone in the queue polls this, so it is one indexed read plus
        cached positions and estimates; feedback is looked up only once served.
        """
        with self.database.reading() as db:
            row = db.execute(
                "SELECT t.display, t.queue_id, t.status, t.queued_at, t.branch_id, t.day, "
                "t.counter, t.language, s.names, b.name, b.languages, t.id, t.kiosk_seq, "
                "s.locations, t.called_at "
                "FROM tickets t JOIN services s ON s.branch_id = t.branch_id "
                "AND s.id = t.queue_id JOIN branches b ON b.id = t.branch_id "
                "WHERE t.public_token = ?",
                [token],
            ).fetchone()
            if row is None:
                return None
            display, queue_id, status, queued_at, branch_id, day, counter = row[:7]
            position = feedback = None
            # where to go: the calling counter's place, else the service's
            place = (
                counter is not None
                and db.execute(
                    "SELECT locations FROM counter_locations WHERE branch_id = ? AND counter = ?",
                    [branch_id, counter],
                ).fetchone()
            )
            if status == "waiting":
                waiting = self._waiting(db, branch_id, queue_id, day)
                ahead = bisect.bisect_left(waiting, queued_at)
                if bisect.bisect_right(waiting, queued_at) - ahead > 1:
                    tied = self._tied(db, branch_id, queue_id, day, queued_at)
                    ahead += bisect.bisect_left(tied, (row[12] or 0, row[11]))
                position = ahead + 1
            elif status == "served":
                feedback = db.execute(
                    "SELECT comment != '' FROM feedback WHERE ticket_id = ?", [row[11]]
                ).fetchone()
            rates = self.estimates(db, branch_id)
            own = rates.get(queue_id, estimate.Rate())
            waiting_before = {  # only branches with priority services pay for this
                s: len(self._waiting(db, branch_id, s, day))
                for s, r in rates.items()
                if r.priority > own.priority and position is not None
            }
        return {
            "number": display,
            "service": _json(row[8]),
            "branch": row[9],
            "languages": _json(row[10]),
            "language": row[7],
            "status": status,
            "position": position,
            "estimated_wait_s": None
            if position is None
            else estimate.wait_in_branch(queue_id, position - 1, rates, waiting_before),
            "counter": counter,
            "called_at": row[14],
            "locations": _json(place[0] if place else row[13] or "{}"),
            "feedback_given": feedback is not None,
            "personal_data": bool(feedback and feedback[0]),
            # for the server's own use (the live channel), never shown
            "id": row[11],
            "branch_id": branch_id,
            "queue_id": queue_id,
        }

    def forget_positions(self, branch_id: str, queue_id: str | None = None) -> None:
        """A queue changed (an event, from any worker): its cached places go, and
        a read that began before now is not cached (it may predate the change)."""
        self._positions_epoch += 1
        for cache in (self._queues, self._ties):
            # a copy first: request threads add keys meanwhile
            for key in [k for k in list(cache) if k[0] == branch_id and queue_id in (None, k[1])]:
                cache.pop(key, None)

    #: A kiosk heard this long after a customer first looked (connect timeout and
    #: more) built its report after that customer's ticket was committed.
    ARRIVAL_MARGIN_S = 15.0
    #: A kiosk silent longer than this holds no ticket anyone is still queueing with.
    SILENT_KIOSK_S = 24 * 3600.0

    def ticket_may_arrive(self, since: datetime) -> bool:
        """Could a ticket printed before ``since`` still be on its way from a kiosk?

        The pending ticket page asks this for a token it does not know. A mistyped
        link must not say "on its way" forever, yet a kiosk offline for an hour
        still holds real tickets: so the answer is no only once every kiosk heard
        from in the last day has, well after ``since``, reported an empty outbox.
        """
        settled = iso(since + timedelta(seconds=self.ARRIVAL_MARGIN_S))
        recent = iso(now() - timedelta(seconds=self.SILENT_KIOSK_S))
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT last_seen_at, last_heartbeat FROM kiosks WHERE revoked_at IS NULL "
                "AND COALESCE(last_seen_at, created_at) >= ?",
                [recent],
            ).fetchall()
        for seen, beat in rows:
            if seen is None or seen < settled or json.loads(beat or "{}").get("outbox", 1) != 0:
                return True
        return False

    def give_feedback(self, token: str, rating: int, comment: str) -> bool:
        """Once per served ticket; False if not served or already given."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT id, status FROM tickets WHERE public_token = ?", [token]
            ).fetchone()
            if row is None or row[1] != "served":
                return False
            return (
                db.execute(
                    "INSERT INTO feedback (ticket_id, rating, comment, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [row[0], rating, comment[:500], iso(now())],
                ).rowcount
                == 1
            )

    def _waiting(self, db, branch_id: str, queue_id: str, day: str) -> list[str]:
        """The queue's waiting times in order, read at most every ``POSITION_TTL_S``.

        Thousands of phones polling their place must not each count thousands
        of rows; a place a second old is fresh enough for a person. Only the
        times: the index holds them, so the read never touches the table.
        """
        key = (branch_id, queue_id, day)
        cached = self._queues.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        epoch = self._positions_epoch
        times = [
            r[0]
            for r in db.execute(
                "SELECT queued_at FROM tickets WHERE branch_id = ? AND queue_id = ? AND day = ? "
                "AND status = 'waiting' ORDER BY queued_at",
                [branch_id, queue_id, day],
            )
        ]
        if epoch == self._positions_epoch:
            self._queues[key] = (time.monotonic() + POSITION_TTL_S, times)
        return times

    def _tied(
        self, db, branch_id: str, queue_id: str, day: str, queued_at: str
    ) -> list[tuple[int, str]]:
        """The waiting tickets queued at the very same moment (a batch of one
        millisecond) in :meth:`call_next`'s order among them: kiosk sequence,
        then id. Rare, so read only then, from the index alone, and kept as long
        as the queue's times."""
        key = (branch_id, queue_id, day, queued_at)
        cached = self._ties.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        epoch = self._positions_epoch
        tied = [
            (r[0] or 0, r[1])
            for r in db.execute(
                "SELECT kiosk_seq, id FROM tickets WHERE branch_id = ? AND queue_id = ? "
                "AND day = ? AND status = 'waiting' AND queued_at = ? "
                "ORDER BY kiosk_seq NULLS FIRST, id",
                [branch_id, queue_id, day, queued_at],
            )
        ]
        if len(self._ties) > 1000:  # moments of past polls: forget them all now and then
            self._ties.clear()
        if epoch == self._positions_epoch:
            self._ties[key] = (time.monotonic() + POSITION_TTL_S, tied)
        return tied

    def parked(self, branch_id: str) -> list[dict]:
        """Tickets no day's queue could take (a kiosk that never knew the time and
        restarted before sending), for staff to place: the customer has paper."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT id, display, service_id, kiosk_id, issued_at_kiosk, received_at, "
                "park_reason FROM tickets WHERE branch_id = ? AND status = 'parked' "
                "ORDER BY received_at, kiosk_seq",
                [branch_id],
            ).fetchall()
        keys = ("id", "number", "service_id", "kiosk_id", "issued_at_kiosk", "received_at")
        return [dict(zip((*keys, "reason"), row, strict=True)) for row in rows]

    def queue_parked(self, branch_id: str, ticket_id: str) -> str:
        """Put a parked ticket at the end of today's queue; "" or why not."""
        with self.database.transaction() as db:
            today, _ = branch_today(db, branch_id)
            try:
                with db.conn.begin_nested():  # a clash undoes this statement alone
                    done = db.execute(
                        "UPDATE tickets SET status = 'waiting', day = ?, queued_at = ?, "
                        "park_reason = NULL WHERE id = ? AND branch_id = ? AND status = 'parked'",
                        [today, iso(now()), ticket_id, branch_id],
                    ).rowcount
            except sa.exc.IntegrityError:
                return "a ticket with the same number is already in today's queue"
            if done:
                queue_id = db.execute(
                    "SELECT queue_id FROM tickets WHERE id = ?", [ticket_id]
                ).fetchone()[0]
                events.record(db, branch_id, queue_id, events.CREATED, tickets=[ticket_id])
        return "" if done else "no such parked ticket"

    def erase_personal_data(self, token: str) -> bool:
        """What the customer typed goes: the feedback comment (the rating stays,
        anonymous) and the address for "your turn nears" messages."""
        with self.database.transaction() as db:
            comment = db.execute(
                "UPDATE feedback SET comment = '' WHERE comment != '' AND ticket_id = "
                "(SELECT id FROM tickets WHERE public_token = ?)",
                [token],
            ).rowcount
            contact = _remove(db, token)
            return comment == 1 or contact

    def cancel(self, token: str) -> str | None:
        """The holder leaves the queue; only a waiting ticket can be cancelled."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT status, id, branch_id, queue_id FROM tickets WHERE public_token = ?",
                [token],
            ).fetchone()
            if row is None:
                return None
            if row[0] == "waiting":
                db.execute(
                    "UPDATE tickets SET status = 'cancelled', finished_at = ? "
                    "WHERE public_token = ?",
                    [iso(now()), token],
                )
                events.record(db, row[2], row[3], events.STATUS, ticket=row[1], status="cancelled")
                return "cancelled"
            return row[0]
