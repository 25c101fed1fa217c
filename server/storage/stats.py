"""What the branch's history says: service times and arrival rates for the
estimates, and the day's figures."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from server import estimate
from server.storage.common import branch_today, iso, now, zone
from server.storage.database import Database

ESTIMATE_TTL_S = 10.0


class Stats:
    database: Database
    _estimates: dict[str, tuple[float, dict[str, estimate.Rate]]]

    def estimates(self, db, branch_id: str) -> dict[str, estimate.Rate]:
        """Per service: seconds per customer, counters serving it now, arrivals per
        second lately, and its priority.

        Read at most every ``ESTIMATE_TTL_S`` per branch: every phone polling
        its ticket must not cost a scan of the day's history.
        """
        cached = self._estimates.get(branch_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        branch_zone = zone(db, branch_id)
        hour_now = now().astimezone(branch_zone).strftime("%w%H")
        samples: dict[str, list[float]] = {}
        same_hour: dict[str, list[float]] = {}
        same_hour_any_day: dict[str, list[float]] = {}
        for service, called, finished in reversed(
            db.execute(
                "SELECT queue_id, called_at, finished_at FROM tickets WHERE branch_id = ? "
                "AND status = 'served' AND called_at IS NOT NULL AND finished_at IS NOT NULL "
                "ORDER BY finished_at DESC LIMIT 1000",
                [branch_id],
            ).fetchall()
        ):
            start, end = datetime.fromisoformat(called), datetime.fromisoformat(finished)
            seconds = (end - start).total_seconds()
            samples.setdefault(service, []).append(seconds)
            slot = end.astimezone(branch_zone).strftime("%w%H")
            if slot[1:] == hour_now[1:]:
                same_hour_any_day.setdefault(service, []).append(seconds)
                if slot == hour_now:
                    same_hour.setdefault(service, []).append(seconds)
        since = iso(now() - timedelta(seconds=estimate.ACTIVE_WINDOW_S))
        # counters that called lately and are open now: one on a break, or closed
        # at logout, serves nobody until it opens again
        counters = dict(
            db.execute(
                "SELECT t.queue_id, COUNT(DISTINCT t.counter) FROM tickets t WHERE "
                "t.branch_id = ? AND t.called_at >= ? AND t.counter NOT IN ("
                "SELECT l.counter FROM counter_log l JOIN (SELECT counter, MAX(id) AS id "
                "FROM counter_log WHERE branch_id = ? GROUP BY counter) newest "
                "ON newest.id = l.id WHERE l.state != 'open') GROUP BY t.queue_id",
                [branch_id, since, branch_id],
            ).fetchall()
        )
        arrivals = dict(
            db.execute(
                "SELECT service_id, COUNT(*) FROM tickets WHERE branch_id = ? AND queued_at >= ? "
                "AND status != 'void' GROUP BY service_id",
                [branch_id, since],
            ).fetchall()
        )
        result = {
            service: estimate.Rate(
                seconds_each=estimate.service_time(
                    samples.get(service, []),
                    same_hour.get(service, []),
                    same_hour_any_day.get(service, []),
                ),
                counters=max(counters.get(service, 1), 1),
                arrivals_per_s=arrivals.get(service, 0) / estimate.ACTIVE_WINDOW_S,
                priority=priority,
            )
            for service, priority in db.execute(
                "SELECT id, priority FROM services WHERE branch_id = ?", [branch_id]
            )
        }
        self._estimates[branch_id] = (time.monotonic() + ESTIMATE_TTL_S, result)
        return result

    def forget_estimates(self, branch_id: str) -> None:
        """A ticket left a queue (an event, from any worker): read the rates again."""
        self._estimates.pop(branch_id, None)

    def daily_stats(self, branch_id: str, day: str | None = None) -> dict[str, dict]:
        """Per service for one day: issued, served, no-shows, cancelled; average and
        90th-percentile wait (from joining the queue to being called), in seconds."""
        with self.database.reading() as db:
            day = day or branch_today(db, branch_id)[0]
            rows = db.execute(
                "SELECT service_id, status, queued_at, called_at FROM tickets "
                "WHERE branch_id = ? AND day = ? AND status != 'void'",
                [branch_id, day],
            ).fetchall()
            services = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM services WHERE branch_id = ? ORDER BY position", [branch_id]
                )
            ]
        stats = {
            s: {"issued": 0, "served": 0, "no_show": 0, "cancelled": 0, "waits": []}
            for s in services
        }
        for service, status, queued, called in rows:
            entry = stats.setdefault(
                service, {"issued": 0, "served": 0, "no_show": 0, "cancelled": 0, "waits": []}
            )
            entry["issued"] += 1
            if status in ("served", "no_show", "cancelled"):
                entry[status] += 1
            if called:
                seconds = datetime.fromisoformat(called) - datetime.fromisoformat(queued)
                entry["waits"].append(max(seconds.total_seconds(), 0))
        for entry in stats.values():
            waits = sorted(entry.pop("waits"))
            entry["average_wait_s"] = round(sum(waits) / len(waits)) if waits else None
            entry["p90_wait_s"] = (
                round(waits[min(len(waits) - 1, math.ceil(0.9 * len(waits)) - 1)])
                if waits
                else None
            )
        return stats
