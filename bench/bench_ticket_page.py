"""The public ticket JSON (what every phone in the queue polls) under load,
against a trivial endpoint of the same server in the same run.

wrk, a separate process on loopback, drives each endpoint in turn; the branch
has 10,000 waiting tickets and the ticket asked for is the last of them.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess

from bench.conftest import FULL
from server import branch_file
from server.storage import Storage
from sync import protocol
from tests.server_data import DEMO, batch, paired, ticket, today
from tests.server_process import Server


def waiting_branch(path, count: int) -> str:
    """A branch with ``count`` waiting tickets; the token of the last one."""
    store = Storage(path)
    store.put_branch(*branch_file.load(DEMO))
    kiosk = paired(store)
    day = today(store)
    for start in range(0, count, 500):  # a lease, then its tickets: as a kiosk does
        numbers = range(start + 1, min(start + 500, count) + 1)
        store.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=500))
        store.ingest(kiosk, batch(*(ticket(n, day=day, mono=n) for n in numbers), mono=count + 1))
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT public_token FROM tickets ORDER BY queued_at DESC LIMIT 1"
        ).fetchone()[0]


def wrk(url: str, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    assert "Non-2xx" not in out, out
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {
        "req_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),
        "p99_ms": round(float(p99.group(1)) * scale, 2),
    }


def test_ticket_json_under_load(tmp_path, record):
    """Rounds alternate the two endpoints, so a neighbour's load on this shared
    machine hits both alike; the ratio is the median of the rounds' ratios."""
    count, seconds, rounds = (10_000, 4, 3) if FULL else (200, 1, 1)
    db = tmp_path / "server.db"
    token = waiting_branch(db, count)
    server = Server(db)
    trivial, ticket_json = [], []
    try:
        wrk(f"{server.url}/healthz", 1)  # warm up
        for _ in range(rounds):
            trivial.append(wrk(f"{server.url}/healthz", seconds))
            ticket_json.append(wrk(f"{server.url}/api/v1/tickets/{token}", seconds))
    finally:
        server.stop()

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ratios = [t["req_per_s"] / h["req_per_s"] for t, h in zip(ticket_json, trivial, strict=True)]
    record(
        "trivial endpoint (/healthz)",
        req_per_s=round(median(trivial, "req_per_s")),
        p99_ms=median(trivial, "p99_ms"),
    )
    record(
        f"ticket JSON, {count} waiting",
        req_per_s=round(median(ticket_json, "req_per_s")),
        p99_ms=median(ticket_json, "p99_ms"),
        ratio_vs_trivial=round(statistics.median(ratios), 2),
        rounds=rounds,
    )
    assert all(run["req_per_s"] > 0 for run in ticket_json)
