"""The public ticket JSON (what every phone in the queue polls) under load,
against a trivial endpoint of the same server in the same run.

wrk, a separate process on loopback, drives each endpoint in turn; the branch
has 10,000 waiting tickets and the ticket asked for is the last of them.
"""

from __future__ import annotations

import re
import sqlite3
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
    for _ in range(0, count, 1000):
        store.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=1000))
    for start in range(0, count, 500):
        numbers = range(start + 1, min(start + 500, count) + 1)
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
    count, seconds = (10_000, 5) if FULL else (200, 1)
    db = tmp_path / "server.db"
    token = waiting_branch(db, count)
    server = Server(db)
    try:
        wrk(f"{server.url}/healthz", 1)  # warm up
        trivial = wrk(f"{server.url}/healthz", seconds)
        ticket_json = wrk(f"{server.url}/api/v1/tickets/{token}", seconds)
    finally:
        server.stop()
    record("trivial endpoint (/healthz)", **trivial)
    record(
        f"ticket JSON, {count} waiting",
        **ticket_json,
        ratio_vs_trivial=round(ticket_json["req_per_s"] / trivial["req_per_s"], 2),
    )
    assert ticket_json["req_per_s"] > 0
