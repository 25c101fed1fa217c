"""What a branch's manager reads: a period's figures per service, per staff
member and per hour of the day, and the customers' feedback.

One read of the period's tickets (index ``tickets_by_day``) and of its
counter changes (``counter_log``); medians and percentiles are computed here,
in Python: a busy branch's month is a few tens of thousands of rows.

What is counted how (README "Reports" says the same to managers):

- a ticket belongs to the branch-local day it was issued for (``tickets.day``)
  and to the service it was issued for (``service_id``), wherever staff moved
  it; void tickets (never handed out) are not counted at all;
- waiting time runs from joining the queue (``queued_at``) to the last call
  (``called_at``: a recall or a transfer moves it);
- service time runs from Start (``started_at``) to the finish, or from the
  call where Start was not pressed; served tickets only;
- a staff member's figures are the tickets they called last (``staff_id``);
- the 90th percentile is the nearest-rank one: the smallest value at least
  90 % of the values are not above;
- staffed counters per hour are time-weighted: a counter open (not paused) for
  half of an hour adds 0.5; arrivals per hour count tickets by the local hour
  they joined the queue. Over several days both are averages per day with
  tickets.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.storage.common import Rejected, _json, iso, now
from server.storage.database import Database

#: the longest period a report covers, in days (a year, leap day included)
MAX_DAYS = 366
RATINGS = (1, 2, 3, 4, 5)


def p90(values: list[float]) -> float | None:
    """The nearest-rank 90th percentile of ``values`` (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def seconds_between(start: str | None, end: str | None) -> float | None:
    """From one ISO time to another, never below zero; None if either is missing."""
    if not (start and end):
        return None
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return seconds if seconds > 0 else 0.0


def durations(values: list[float]) -> dict:
    """Seconds, summed up: how many, median, 90th percentile, longest."""
    return {
        "count": len(values),
        "median_s": statistics.median(values) if values else None,
        "p90_s": p90(values),
        "longest_s": max(values) if values else None,
    }


@dataclass
class Tally:
    """The figures of one row of a report: a service, a staff member, the branch."""

    issued: int = 0
    called: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    transfers: int = 0
    counter_given: int = 0
    waits: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)

    def count(
        self,
        status: str,
        called: bool,
        transfers: int,
        by_counter: bool,
        wait_s: float | None,
        service_s: float | None,
        rating: int | None,
    ) -> None:
        self.issued += 1
        self.called += called
        if status == "served":
            self.served += 1
        elif status == "no_show":
            self.no_show += 1
        elif status == "cancelled":
            self.cancelled += 1
        self.transfers += transfers
        self.counter_given += by_counter
        if wait_s is not None:
            self.waits.append(wait_s)
        if service_s is not None:
            self.service.append(service_s)
        if rating is not None:
            self.ratings.append(rating)

    def summary(self) -> dict:
        ratings = self.ratings
        return {
            "issued": self.issued,
            "called": self.called,
            "served": self.served,
            "no_show": self.no_show,
            "cancelled": self.cancelled,
            "transfers": self.transfers,
            "counter_given": self.counter_given,
            "wait": durations(self.waits),
            "service_time": durations(self.service),
            "feedback": {
                "count": len(ratings),
                "average": sum(ratings) / len(ratings) if ratings else None,
                "distribution": {n: ratings.count(n) for n in RATINGS},
            },
        }


def parse_day(text: str, what: str) -> date:
    """A calendar day from YYYY-MM-DD, or :class:`Rejected` saying what is wrong."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise Rejected(f"{what}: {text[:20]!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Rejected(f"{what}: {text[:20]!r} is not a date (YYYY-MM-DD)") from None


def check_period(first: date, last: date) -> None:
    """A period reports can cover: in order, and at most :data:`MAX_DAYS` long."""
    if first > last:
        raise Rejected(f"the period starts ({first}) after it ends ({last})")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise Rejected(f"a report covers at most {MAX_DAYS} days; this period has {days}")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def staffed_seconds(
    changes: Iterable[dict], until: datetime, zone: ZoneInfo
) -> dict[tuple[str, int], float]:
    """Per (local day, local hour): counter-seconds open, from the counter
    changes (each counter's state at the start, then every change)."""
    opened: dict[str, datetime] = {}
    spans: list[tuple[datetime, datetime]] = []
    for change in changes:
        at = datetime.fromisoformat(change["at"])
        counter = change["counter"]
        if change["state"] == "open":
            opened.setdefault(counter, at)
        elif counter in opened:
            spans.append((opened.pop(counter), at))
    spans.extend((start, until) for start in opened.values())
    seconds: dict[tuple[str, int], float] = {}
    for start, end in spans:
        moment = start
        while moment < end:
            local = moment.astimezone(zone)
            hour_start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            step_end = min(end, hour_start + timedelta(hours=1))
            key = (local.date().isoformat(), local.hour)
            seconds[key] = seconds.get(key, 0.0) + (step_end - moment).total_seconds()
            moment = step_end
    return seconds


class Reports:
    """Reads only; needs :meth:`server.storage.desks.Desks.counter_log` and
    :meth:`server.storage.callbacks.Callbacks.callback_figures` beside it."""

    database: Database

    def report(self, branch_id: str, first: date, last: date, weekday: int | None = None) -> dict:
        """The figures of ``first`` to ``last`` (branch-local days, inclusive;
        only the ``weekday``s among them, 0 Monday to 6 Sunday, when given):
        per service, per staff member, the whole branch, per hour of the day,
        and every rating with its comment ("" for none, or erased), newest first."""
        check_period(first, last)
        if weekday is not None and weekday not in range(7):
            raise Rejected(f"a weekday is 0 (Monday) to 6 (Sunday), not {weekday!r}")
        chosen = {
            (first + timedelta(days=n)).isoformat()
            for n in range((last - first).days + 1)
            if weekday is None or (first + timedelta(days=n)).weekday() == weekday
        }
        with self.database.reading() as db:
            branch = db.execute(
                "SELECT name, timezone FROM branches WHERE id = ?", [branch_id]
            ).fetchone()
            if branch is None:
                raise Rejected(f"no branch {branch_id!r}")
            services = db.execute(
                "SELECT id, prefix, names FROM services WHERE branch_id = ? ORDER BY position, id",
                [branch_id],
            ).fetchall()
            rows = db.execute(
                "SELECT t.service_id, t.status, t.queued_at, t.called_at, t.started_at, "
                "t.finished_at, t.staff_id, t.transfers, t.origin, f.rating, f.comment, "
                "f.created_at, t.day FROM tickets t "
                "LEFT JOIN feedback f ON f.ticket_id = t.id "
                "WHERE t.branch_id = ? AND t.day >= ? AND t.day <= ? AND t.status != 'void'",
                [branch_id, first.isoformat(), last.isoformat()],
            ).fetchall()
            names = dict(db.execute("SELECT id, username FROM staff").fetchall())
        zone = ZoneInfo(branch[1])
        since = local_midnight(first, zone)
        until = min(local_midnight(last + timedelta(days=1), zone), now())
        changes = self.counter_log(branch_id, iso(since), iso(until)) if until > since else []

        by_service: dict[str, Tally] = {s[0]: Tally() for s in services}
        by_staff: dict[int, Tally] = {}
        total = Tally()
        arrivals = [0] * 24
        days_with_tickets: set[str] = set()
        feedback = []
        for row in rows:
            if row[12] not in chosen:
                continue
            (service_id, status, queued, called, started, finished, staff_id, transfers) = row[:8]
            figures = (
                status,
                called is not None,
                transfers or 0,
                row[8] == "counter",
                seconds_between(queued, called),
                seconds_between(started or called, finished) if status == "served" else None,
                row[9],
            )
            total.count(*figures)
            tally = by_service.get(service_id)
            if tally is None:
                tally = by_service[service_id] = Tally()
            tally.count(*figures)
            if staff_id is not None:
                tally = by_staff.get(staff_id)
                if tally is None:
                    tally = by_staff[staff_id] = Tally()
                tally.count(*figures)
            arrivals[datetime.fromisoformat(queued).astimezone(zone).hour] += 1
            days_with_tickets.add(row[12])
            if row[9] is not None:
                feedback.append(
                    {
                        "at": datetime.fromisoformat(row[11]).astimezone(zone),
                        "service_id": service_id,
                        "rating": row[9],
                        "comment": row[10] or "",
                        "staff": names.get(staff_id) if staff_id is not None else None,
                    }
                )
        feedback.sort(key=lambda c: c["at"], reverse=True)

        divisor = max(1, len(days_with_tickets))
        staffed = [0.0] * 24
        for (day, hour), seconds in staffed_seconds(changes, until, zone).items():
            if day in chosen:
                staffed[hour] += seconds / 3600
        service_info = {s[0]: {"prefix": s[1], "names": _json(s[2])} for s in services}
        return {
            "branch": {"id": branch_id, "name": branch[0], "timezone": branch[1]},
            "first": first.isoformat(),
            "last": last.isoformat(),
            "days": len(chosen),
            "weekday": weekday,
            "days_with_tickets": len(days_with_tickets),
            "services": [
                {
                    "id": service_id,
                    "prefix": service_info.get(service_id, {}).get("prefix", ""),
                    "names": service_info.get(service_id, {}).get("names", {}),
                    **tally.summary(),
                }
                for service_id, tally in by_service.items()
            ],
            "staff": sorted(
                (
                    {
                        "id": staff_id,
                        "name": names.get(staff_id),
                        **tally.summary(),
                    }
                    for staff_id, tally in by_staff.items()
                ),
                key=lambda s: (s["name"] is None, s["name"] or "", s["id"]),
            ),
            "total": total.summary(),
            "hourly": [
                {
                    "hour": hour,
                    "arrivals": arrivals[hour] / divisor,
                    "staffed": staffed[hour] / divisor,
                }
                for hour in range(24)
            ],
            "feedback": feedback,
            # "call me back" requests of the same days (server.storage.callbacks)
            "callbacks": self.callback_figures(branch_id, first, last, weekday),
        }
