"""A kiosk's backlog after an outage, delivered to the server by the real daemon.

Reports the time, the HTTP requests it took (counted by a pass-through proxy)
and the daemon's peak memory for a small and a large backlog (flat memory:
the ratio stays near 1).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from server.storage import LEASE_UNUSED_MAX
from sync import exchange, protocol, state, tickets
from sync.client import ServerClient
from sync.daemon import Credentials
from tests.chaos import ChaosProxy
from tests.server_process import DEMO_BRANCH, Server, run

SERVICES = ("payments", "permits", "advice")  # the demo branch's
# The daemon's own high-water mark (VmHWM): ru_maxrss would also count the pytest
# process it was forked from, whose size depends on the plugins installed.
PEAK_RSS = (
    "import re, sys; from sync.cli import main; rc = main(sys.argv[1:]); "
    "status = open('/proc/self/status').read(); "
    "print('peak_rss_kb', re.search(r'VmHWM:\\s+(\\d+)', status).group(1)); sys.exit(rc)"
)


def backlog(server: Server, kiosk_dir, count: int) -> None:
    """``count`` printed tickets waiting in the outbox, on leased numbers, spread
    over the demo's services (the server lets a kiosk hold at most
    ``LEASE_UNUSED_MAX`` unused numbers of a service a day)."""
    credentials = Credentials.load(kiosk_dir)
    client = ServerClient(server.url, credentials.token)
    db = state.connect(kiosk_dir / "state.db")
    day = tickets.branch_day(db, tickets.now_utc())
    each = -(-count // len(SERVICES))
    assert each <= LEASE_UNUSED_MAX
    for service in SERVICES:
        left = each - exchange.leased_remaining(db, service, day)  # the daemon's first lease
        while left > 0:
            block = min(left, 1000)
            lease = client.lease(protocol.LeaseRequest(service_id=service, day=day, count=block))
            db["leases"].insert(
                {
                    "service_id": service,
                    "day": day,
                    "first": lease.first,
                    "last": lease.last,
                    "next": lease.first,
                    "source": "server",
                }
            )
            left -= block
    for n in range(count):
        service = SERVICES[n % len(SERVICES)]
        tickets.mark_printed(db, tickets.issue_ticket(db, service, language="fi").id)
    client.close()
    db.close()


def deliver(tmp_path, count: int) -> dict:
    server = Server(tmp_path / f"server-{count}" / "server.db")
    proxy = ChaosProxy(server.port, seed=0)  # pass-through: counts requests
    try:
        server.load_branch(DEMO_BRANCH)
        kiosk_dir = tmp_path / f"kiosk-{count}"
        code = server.pair_code()
        run(
            "vuoro-sync",
            "--state-dir",
            str(kiosk_dir),
            "pair",
            "--server",
            proxy.url,
            "--code",
            code,
        )
        run("vuoro-sync", "--state-dir", str(kiosk_dir), "run", "--once")  # config, leases
        backlog(server, kiosk_dir, count)
        before = proxy.requests
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, "--state-dir", str(kiosk_dir), "run", "--once"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        elapsed = time.perf_counter() - start
        assert result.returncode == 0, result.stderr
        db = state.connect(kiosk_dir / "state.db")
        assert tickets.outbox_depth(db) == 0
        with sqlite3.connect(server.db) as sdb:
            assert sdb.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == count
        peak = int(result.stdout.split("peak_rss_kb")[1].split()[0])
        return {
            "seconds": round(elapsed, 2),
            "requests": proxy.requests - before,
            "peak_rss_mb": round(peak / 1024, 1),
        }
    finally:
        proxy.close()
        server.stop()


def test_backlog_delivery(tmp_path, record):
    from bench.conftest import FULL

    small, large = (1000, 6000) if FULL else (50, 200)
    first = deliver(tmp_path, small)
    second = deliver(tmp_path, large)
    assert second["requests"] <= 100, "a backlog goes in batches, not a request a ticket"
    record(f"sync backlog {small}", **first)
    record(
        f"sync backlog {large}",
        **second,
        rss_ratio_vs_small=round(second["peak_rss_mb"] / first["peak_rss_mb"], 2),
        tickets_per_s=round(large / second["seconds"]),
    )
