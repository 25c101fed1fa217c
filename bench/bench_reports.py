"""The manager's report of a busy branch's month: 30 days of 800 tickets
(a tenth of them rated), counters opening and pausing all day; the storage
read and the whole page over HTTP from a real server, each the median of a
few runs. Tiny (2 days of 50) under `make test`."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import requests

from bench.conftest import FULL
from server import branch_file
from server.storage import Storage, iso, schema
from tests.server_data import DEMO
from tests.server_process import Server
from tests.web import PASSWORD, add_staff

ZONE = ZoneInfo("Europe/Helsinki")


def busy_month(store: Storage, days: int, per_day: int) -> tuple:
    """``days`` past days of ``per_day`` tickets each; the first and last day."""
    rng = random.Random(30)
    last = datetime.now(ZONE).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    tickets, feedback, log = [], [], []
    for d in range(days):
        day = first + timedelta(days=d)
        opening = datetime(day.year, day.month, day.day, 8, tzinfo=ZONE).astimezone(UTC)
        for counter in ("1", "2", "3", "4", "5", "6"):
            for state, hours in (("open", 0), ("paused", 3.5), ("open", 4), ("closed", 8)):
                at = opening + timedelta(hours=hours, minutes=rng.uniform(0, 20))
                log.append(
                    {
                        "branch_id": "demo",
                        "counter": counter,
                        "state": state,
                        "services": "[]",
                        "at": iso(at),
                    }
                )
        for n in range(per_day):
            queued = opening + timedelta(seconds=rng.uniform(0, 8 * 3600))
            called = queued + timedelta(seconds=rng.uniform(0, 1800))
            finished = called + timedelta(seconds=rng.uniform(60, 900))
            ident = f"{day}-{n}"
            tickets.append(
                {
                    "id": ident,
                    "branch_id": "demo",
                    "service_id": rng.choice(("payments", "permits", "advice")),
                    "public_token": f"tok-{ident}",
                    "day": day.isoformat(),
                    "number": n + 1,
                    "display": f"A{n + 1:03d}",
                    "language": "fi",
                    "queued_at": iso(queued),
                    "received_at": iso(queued),
                    "status": "served" if rng.random() < 0.9 else "no_show",
                    "called_at": iso(called),
                    "finished_at": iso(finished),
                    "staff_id": rng.randint(1, 8),
                }
            )
            if n % 10 == 0:
                feedback.append(
                    {
                        "ticket_id": ident,
                        "rating": rng.randint(1, 5),
                        "comment": "ok" if n % 20 else "",
                        "created_at": iso(finished),
                    }
                )
    log.sort(key=lambda row: row["at"])
    with store.transaction() as db:
        db.conn.execute(schema.tickets.insert(), tickets)
        db.conn.execute(schema.feedback.insert(), feedback)
        db.conn.execute(schema.counter_log.insert(), log)
    return first, last


def test_a_busy_branchs_month_of_reports(tmp_path, record):
    days, per_day, runs = (30, 800, 5) if FULL else (2, 50, 1)
    db = tmp_path / "server.db"
    store = Storage(db)
    store.put_branch(*branch_file.load(DEMO))
    first, last = busy_month(store, days, per_day)
    storage_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        report = store.report("demo", first, last)
        storage_ms.append((time.perf_counter() - started) * 1000)
    assert report["total"]["issued"] == days * per_day
    store.database.dispose()

    server = Server(db)
    try:
        add_staff(server, "boss", "1", role="manager")
        session = requests.Session()
        session.post(
            f"{server.url}/console/login",
            data={"username": "boss", "password": PASSWORD},
            timeout=30,
        )
        page_ms = []
        query = {"from": first.isoformat(), "to": last.isoformat()}
        for _ in range(runs):
            started = time.perf_counter()
            reply = session.get(f"{server.url}/console/reports", params=query, timeout=60)
            page_ms.append((time.perf_counter() - started) * 1000)
            assert reply.status_code == 200
    finally:
        server.stop()
    record(
        f"report, {days} days x {per_day} tickets",
        storage_ms=round(statistics.median(storage_ms), 1),
        page_ms=round(statistics.median(page_ms), 1),
    )
