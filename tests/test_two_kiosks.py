"""Two kiosks in one branch, one of them offline while both issue tickets: no
number clash, and after it reconnects the queue is in fair (issue) order."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from sync import state, tickets
from tests.server_process import DEMO_BRANCH, Server, SyncProcess, wait_until


@pytest.fixture
def two_kiosks(tmp_path, server_database):
    """The demo branch on a real server, with kiosks "door" and "lobby" paired."""
    server = server_database.server(tmp_path / "server")
    server.load_branch(DEMO_BRANCH)
    kiosks = {name: tmp_path / name for name in ("door", "lobby")}
    for name, path in kiosks.items():
        server.pair(path, name)
    yield server, kiosks
    server.stop()


def test_an_offline_kiosk_rejoins_in_fair_order_without_clashes(two_kiosks):
    server, kiosks = two_kiosks
    daemons = []
    try:
        daemons.append(SyncProcess(kiosks["door"]))  # "lobby" has lost its network
        dbs = {name: state.connect(path / "state.db") for name, path in kiosks.items()}
        issued = []  # (kiosk, display) in real issue order
        for _ in range(8):
            for name in ("door", "lobby"):
                ticket = tickets.issue_ticket(dbs[name], "payments", language="fi")
                tickets.mark_printed(dbs[name], ticket.id)
                issued.append((name, ticket.display))
                time.sleep(0.15)
        # the lobby kiosk used up its lease: the rest come from its reserve series
        for _ in range(120):
            ticket = tickets.issue_ticket(dbs["lobby"], "payments", language="fi")
            tickets.mark_printed(dbs["lobby"], ticket.id)
        reserve = ticket.display
        time.sleep(1.0)  # the door's tickets are on the server by now
        daemons.append(SyncProcess(kiosks["lobby"]))  # the network is back
        wait_until(lambda: on_server(server) == 16 + 120, timeout=60, what="both kiosks delivered")
    finally:
        for daemon in daemons:
            daemon.stop()
    rows = server.sql(
        "SELECT k.name, t.display, t.series, t.number, t.queued_at FROM tickets t "
        "JOIN kiosks k ON k.id = t.kiosk_id WHERE t.service_id = 'payments' "
        "ORDER BY t.queued_at"
    )
    numbers = [(series, number) for _, _, series, number, _ in rows]
    assert len(numbers) == len(set(numbers)), "no two tickets share a number"
    assert [(name, display) for name, display, *_ in rows[:16]] == issued, "fair order"
    assert reserve.startswith("AK2-") and reserve in [r[1] for r in rows]
    times = [datetime.fromisoformat(r[4]) for r in rows]
    assert times == sorted(times)


def on_server(server: Server) -> int:
    return server.sql("SELECT COUNT(*) FROM tickets")[0][0]


def test_an_hour_offline_in_simulated_time_still_queues_by_issue_time(two_kiosks):
    """The kiosks' monotonic clocks are the simulation's clock: an hour of
    issuing, five minutes apart, one kiosk offline throughout."""
    server, kiosks = two_kiosks
    daemons = []
    try:
        dbs = {name: state.connect(path / "state.db") for name, path in kiosks.items()}
        now_ns = time.monotonic_ns()
        minute = 60 * 10**9
        # today only, and since this machine booted: the kiosk's monotonic clock
        # (the simulation's) starts at boot, as a Pi's does, and a CI machine may
        # have booted minutes ago
        since_boot = now_ns // minute - 1
        span = max(1, min(60, minutes_since_branch_midnight(server) - 2, since_boot)) * minute
        issued = []
        for step in range(12):  # door at :00, :05, ...; lobby at :02, :07, ...
            for name, offset in (("door", 0), ("lobby", 2 * minute)):
                at = now_ns - span + step * span // 12 + offset * span // (60 * minute)
                ticket = tickets.issue_ticket(dbs[name], "permits", language="fi", mono_ns=at)
                tickets.mark_printed(dbs[name], ticket.id)
                issued.append((name, ticket.display))
        daemons.append(SyncProcess(kiosks["door"]))
        wait_until(lambda: on_server(server) == 12, what="the online kiosk delivered")
        daemons.append(SyncProcess(kiosks["lobby"]))  # back after the hour
        wait_until(lambda: on_server(server) == 24, what="the offline kiosk delivered")
    finally:
        for daemon in daemons:
            daemon.stop()
    queue = server.sql(
        "SELECT k.name, t.display FROM tickets t JOIN kiosks k ON k.id = t.kiosk_id "
        "ORDER BY t.queued_at"
    )
    assert queue == issued, "every ticket in the place its issue time gives it"


def minutes_since_branch_midnight(server: Server) -> int:
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Europe/Helsinki"))
    return local.hour * 60 + local.minute
