"""What the paper and the home screen say of the queue between heartbeats, and
the daily cap: the server's last snapshot plus the kiosk's own tickets since,
and nothing when the snapshot is too old to be true."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import requests

from kiosk import config
from kiosk.paper import queue_line, ticket_content
from sync import exchange, protocol, state, tickets
from sync.daemon import Credentials, SyncDaemon
from sync.schedule import Availability
from tests.conftest import TWO_SERVICES, ServerDatabases
from tests.server_process import DEMO_BRANCH, Server

SERVICES = [
    {"id": "payments", "prefix": "A", "names": {"en": "Payments"}},
    {"id": "permits", "prefix": "B", "names": {"en": "Permits"}},
]


@pytest.fixture
def db(tmp_path):
    """A paired kiosk's state DB with server leases for today."""
    db = state.connect(tmp_path / "state.db")
    tickets.apply_standalone_config(
        db,
        branch={"name": "Branch", "timezone": "Europe/Helsinki"},
        ticket={"url_template": "https://q.example/t/{token}"},
        services=SERVICES,
    )
    tickets.set_config(db, "mode", "paired")
    for service in SERVICES:
        exchange.add_lease(
            db,
            protocol.LeaseResponse(service_id=service["id"], day=today(db), first=1, last=100),
        )
    return db


def today(db) -> str:
    return tickets.branch_day(db, tickets.now_utc())


def heartbeat(db, waiting: int, issued: int, per_person: float | None = 300.0) -> None:
    exchange.apply_heartbeat(
        db,
        protocol.HeartbeatResponse(
            server_time=tickets.iso(tickets.now_utc()),
            queue={
                "payments": protocol.QueueState(
                    waiting=waiting,
                    estimated_wait_s=waiting * 300,
                    issued=issued,
                    wait_per_person_s=per_person,
                )
            },
        ),
    )


def issue(db, service: str = "payments") -> tickets.Ticket:
    ticket = tickets.issue_ticket(db, service, language="en")
    tickets.mark_printed(db, ticket.id)
    return ticket


def deliver(db, *issued: tickets.Ticket, result: str = "created") -> None:
    exchange.record_results(db, [protocol.TicketResult(id=t.id, result=result) for t in issued])


def on_paper(db, ticket: tickets.Ticket, mono_ns: int | None = None) -> tuple:
    service = tickets.service_for_ticket(db, ticket, mono_ns)
    return service.waiting, service.estimated_wait_s


def payments(db, mono_ns: int | None = None) -> tickets.Service:
    return tickets.listed_services(db, mono_ns=mono_ns)[0]


def test_own_tickets_since_the_snapshot_count_whether_delivered_or_not(db):
    heartbeat(db, waiting=2, issued=2)
    first = issue(db)
    assert on_paper(db, first) == (2, 600)
    deliver(db, first)  # on the server now, but not in its last snapshot
    second = issue(db)
    assert on_paper(db, second) == (3, 900), "the first is ahead, delivered or not"
    assert on_paper(db, first) == (2, 600), "only tickets issued before it"
    assert (payments(db).waiting, payments(db).estimated_wait_s) == (4, 1200)
    assert tickets.issued_today(db, "payments", today(db)) == 4

    voided = tickets.issue_ticket(db, "payments", language="en")
    db.execute("UPDATE tickets SET state = 'void' WHERE id = ?", [voided.id])  # never printed
    refused = issue(db)
    deliver(db, refused, result="rejected:number_not_leased")
    deliver(db, second)
    assert payments(db).waiting == 4, "void and parked tickets are in nobody's queue"
    assert tickets.issued_today(db, "payments", today(db)) == 4

    heartbeat(db, waiting=4, issued=4)  # the server has counted both
    assert payments(db).waiting == 4, "not counted twice"
    assert tickets.issued_today(db, "payments", today(db)) == 4
    assert on_paper(db, second) == (None, None), "a snapshot after it says nothing of it"
    third = issue(db)
    assert on_paper(db, third) == (4, 1200)


def test_an_old_snapshot_or_one_from_another_boot_says_nothing(db):
    heartbeat(db, waiting=2, issued=2)
    received = db.execute("SELECT received_mono_ns FROM queue_snapshot").fetchone()[0]
    ticket = issue(db)
    fresh = received + round(tickets.QUEUE_FRESH_S * 1e9)
    assert on_paper(db, ticket, fresh) == (2, 600)
    assert (payments(db, fresh).waiting, payments(db, fresh).estimated_wait_s) == (3, 900)
    assert on_paper(db, ticket, fresh + 1) == (None, None)
    assert (payments(db, fresh + 1).waiting, payments(db, fresh + 1).estimated_wait_s) == (
        None,
        None,
    )
    assert tickets.issued_today(db, "payments", today(db)) == 3, "the cap keeps what it knows"
    db.execute("UPDATE queue_snapshot SET received_boot_id = 'another boot'")
    assert on_paper(db, ticket, received) == (None, None), "monotonic clocks restart at boot"


def test_a_server_without_seconds_per_person_gets_no_wait_guessed(db):
    heartbeat(db, waiting=2, issued=2, per_person=None)
    first = issue(db)
    second = issue(db)
    assert on_paper(db, first) == (2, 600)
    assert on_paper(db, second) == (3, None)


# -- through a real server ----------------------------------------------------


def branch_with_desk(
    tmp_path: Path, cap: int | None, databases: ServerDatabases
) -> tuple[Server, Path]:
    """The demo branch plus service D ("desk"), on a real server, and a paired kiosk."""
    server = databases.server(tmp_path / "server")
    text = DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", server.url)
    text += '\n[[services]]\nid = "desk"\nprefix = "D"\nname = { en = "Desk", fi = "Tiski" }\n'
    if cap is not None:
        text += f"daily_cap = {cap}\n"
    branch_file = tmp_path / "branch.toml"
    branch_file.write_text(text, encoding="utf-8")
    server.load_branch(branch_file)
    kiosk_dir = tmp_path / "kiosk"
    server.pair(kiosk_dir, "door")
    return server, kiosk_dir


@pytest.fixture
def desk(tmp_path, server_database):
    server, kiosk_dir = branch_with_desk(tmp_path, None, server_database)
    daemon = SyncDaemon(kiosk_dir, Credentials.load(kiosk_dir))
    yield server, daemon
    daemon.db.close()
    server.stop()


@pytest.fixture
def capped_desk(tmp_path, server_database):
    server, kiosk_dir = branch_with_desk(tmp_path, 3, server_database)
    daemon = SyncDaemon(kiosk_dir, Credentials.load(kiosk_dir))
    yield server, daemon, kiosk_dir
    daemon.db.close()
    server.stop()


def paper(db, ticket: tickets.Ticket):
    """The ticket's paper as the kiosk prints it."""
    return ticket_content(
        config.parse(TWO_SERVICES), ticket, tickets.service_for_ticket(db, ticket)
    )


def phone(server: Server, ticket: tickets.Ticket) -> dict:
    reply = requests.get(f"{server.url}/api/v1/tickets/{ticket.public_token}", timeout=10)
    reply.raise_for_status()
    return reply.json()


def test_the_paper_counts_own_tickets_between_heartbeats_and_agrees_with_the_phone(desk):
    server, daemon = desk
    db = daemon.db
    daemon.heartbeat()  # the queue is empty
    c1 = issue(db, "advice")
    c1_paper = tickets.service_for_ticket(db, c1)
    daemon.push_outbox()  # C001 is on the server; no heartbeat since
    c2 = issue(db, "advice")
    c2_paper = tickets.service_for_ticket(db, c2)
    assert (c1.display, c2.display) == ("C001", "C002")
    assert (c1_paper.waiting, c2_paper.waiting) == (0, 1)
    assert c2_paper.estimated_wait_s > c1_paper.estimated_wait_s
    assert paper(db, c2).queue_line.startswith("1 waiting before you · about ")

    daemon.push_outbox()
    seen = phone(server, c2)
    assert seen["position"] == c2_paper.waiting + 1, "the phone counts the ticket itself"
    assert paper(db, c2).queue_line == queue_line(
        replace(c2_paper, waiting=seen["position"] - 1, estimated_wait_s=seen["estimated_wait_s"]),
        "en",
    )

    d = [issue(db, "desk")]
    daemon.push_outbox()
    d += [issue(db, "desk"), issue(db, "desk")]
    daemon.push_outbox()  # D001-D003 waiting on the server, none in a snapshot
    d.append(issue(db, "desk"))
    assert [t.display for t in d] == ["D001", "D002", "D003", "D004"]
    assert [tickets.service_for_ticket(db, t).waiting for t in d] == [0, 1, 2, 3]
    assert paper(db, d[3]).queue_line.startswith("3 waiting before you")
    home = {s.id: s.waiting for s in tickets.listed_services(db)}
    assert (home["advice"], home["desk"]) == (2, 4)

    daemon.push_outbox()
    daemon.heartbeat()
    assert phone(server, d[3])["position"] == 4
    after = {s.id: s.waiting for s in tickets.listed_services(db)}
    assert after == home, "the server's count agrees with the kiosk's own"


def test_a_daily_cap_of_three_stops_at_three_between_heartbeats(capped_desk):
    server, daemon, _ = capped_desk
    db = daemon.db
    daemon.heartbeat()
    issue(db, "desk")
    daemon.push_outbox()
    daemon.heartbeat()  # the server counts D001
    issue(db, "desk")
    issue(db, "desk")
    daemon.push_outbox()  # D002 and D003 delivered after the last heartbeat
    assert tickets.availability(db, "desk", tickets.now_utc()) == Availability("full")
    with pytest.raises(tickets.ServiceClosed):
        tickets.issue_ticket(db, "desk", language="en")
    daemon.heartbeat()
    with pytest.raises(tickets.ServiceClosed):
        tickets.issue_ticket(db, "desk", language="en")
    assert issued_on_server(server, "desk") == 3


def issued_on_server(server: Server, service: str) -> int:
    reply = requests.get(
        f"{server.url}/api/v1/branches/demo/queue",
        headers={"Authorization": f"Bearer {server.display_token()}"},
        timeout=10,
    )
    reply.raise_for_status()
    return reply.json()[service]["issued"]


@pytest.mark.ui
def test_the_real_kiosk_prints_the_count_and_stops_at_the_cap(screen, write_config, capped_desk):
    from printer.render import read_transcript
    from tests.kiosk_driver import Kiosk

    server, daemon, kiosk_dir = capped_desk
    kiosk = Kiosk(screen, kiosk_dir, write_config())
    try:
        daemon.heartbeat()
        for count in (1, 2, 3):
            screen.key("4")  # the fourth service: D
            kiosk.wait_for_tickets(count, ("printed",))
            daemon.push_outbox()  # delivered at once, as the daemon does; no heartbeat
            kiosk.press_done()  # home: the buttons are read again
        screen.key("4")  # D is full: nothing
        screen.key("1")  # A001 shows that the kiosk took the keys
        rows = kiosk.wait_for_tickets(4, ("printed",))
    finally:
        kiosk.stop()
    assert [r["display"] for r in rows] == ["D001", "D002", "D003", "A001"]
    ahead = {
        png.stem.rsplit("-", 1)[1]: line.split(" · ")[0]
        for png in kiosk.printed_pngs()
        for line in read_transcript(png).splitlines()
        if line.startswith("Edelläsi")
    }
    assert ahead == {
        "D001": "Edelläsi jonossa 0",
        "D002": "Edelläsi jonossa 1",
        "D003": "Edelläsi jonossa 2",
        "A001": "Edelläsi jonossa 0",
    }
    assert issued_on_server(server, "desk") == 3
