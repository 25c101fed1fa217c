"""The kiosk's state DB and the server, through the real sync daemon and real
processes on loopback: nothing lost, nothing doubled, no number clashes."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync import exchange, state, tickets
from tests.server_process import BIN, DEMO_BRANCH, Server, SyncProcess, run, wait_until


@pytest.fixture
def server(tmp_path, server_database):
    srv = server_database.server(tmp_path / "server")
    srv.load_branch(DEMO_BRANCH)
    yield srv
    srv.stop()


def leases_ready(state_dir: Path) -> bool:
    db = state.connect(state_dir / "state.db")
    try:
        return db.execute("SELECT COUNT(*) FROM leases WHERE source = 'server'").fetchone()[0] >= 3
    finally:
        db.close()


def issue_printed(state_dir: Path, count: int, service: str = "payments") -> list[str]:
    db = state.connect(state_dir / "state.db")
    shown = []
    for _ in range(count):
        ticket = tickets.issue_ticket(db, service, language="fi")
        tickets.mark_printed(db, ticket.id)
        shown.append(ticket.display)
    db.close()
    return shown


def server_tickets(server: Server) -> list[tuple]:
    return server.sql(
        "SELECT id, kiosk_id, service_id, day, series, number, display, status "
        "FROM tickets ORDER BY queued_at"
    )


def delivered(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "state.db") as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL").fetchone()[
            0
        ]


def test_pairing_keeps_the_token_private(server, tmp_path):
    server.pair(tmp_path / "kiosk")
    assert (tmp_path / "kiosk" / "credentials.json").stat().st_mode & 0o777 == 0o600
    result = subprocess_run_sync(tmp_path / "other", server.url, "BADCODE1")
    assert result.returncode == 1 and "pairing failed" in result.stderr


def subprocess_run_sync(state_dir: Path, url: str, code: str):
    import sys

    return subprocess.run(
        [
            str(Path(sys.executable).parent / "vuoro-sync"),
            "--state-dir",
            str(state_dir),
            "pair",
            "--server",
            url,
            "--code",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tickets_from_an_outage_arrive_exactly_once_after_the_server_returns(server, tmp_path):
    kiosk = tmp_path / "kiosk"
    server.pair(kiosk)
    daemon = SyncProcess(kiosk)
    try:
        wait_until(lambda: leases_ready(kiosk), what="config and leases")
        before = issue_printed(kiosk, 5)
        wait_until(lambda: delivered(kiosk) == 5, what="first tickets delivered")
        server.kill()  # the server dies; the kiosk keeps issuing
        during = issue_printed(kiosk, 10) + issue_printed(kiosk, 3, "permits")
        server.start()  # same DB, same port
        wait_until(lambda: delivered(kiosk) == 18, timeout=60, what="backlog delivered")
    finally:
        daemon.stop()
    rows = server_tickets(server)
    assert len(rows) == 18 and len({r[0] for r in rows}) == 18
    assert sorted(r[6] for r in rows) == sorted(before + during)
    assert len({(r[2], r[3], r[4], r[5]) for r in rows}) == 18, "numbers unique per service and day"
    server.assert_intact()


def test_a_revoked_kiosk_keeps_printing_and_knows(server, tmp_path):
    kiosk = tmp_path / "kiosk"
    server.pair(kiosk)
    kiosk_id = server_kiosk_id(server)
    server.cli("revoke", kiosk_id)
    daemon = SyncProcess(kiosk)
    try:
        wait_until(lambda: server_state(kiosk) == "not_authorized", what="revocation noticed")
        shown = issue_printed(kiosk, 2)
    finally:
        daemon.stop()
    assert shown == ["A001", "A002"], "numbers from the lease it already had"


def server_kiosk_id(server: Server) -> str:
    return server.sql("SELECT id FROM kiosks")[0][0]


def server_state(kiosk: Path) -> str:
    with sqlite3.connect(kiosk / "state.db") as db:
        row = db.execute("SELECT state FROM device_status WHERE component = 'server'").fetchone()
    return row[0] if row else ""


def test_https_is_verified_and_a_private_ca_can_be_trusted(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # TLS is the transport's: one database is enough
    server = Server(tmp_path / "server" / "server.db", tls=(cert, key))
    try:
        server.load_branch(DEMO_BRANCH)
        code = server.pair_code()
        untrusted = subprocess.run(
            [
                str(BIN / "vuoro-sync"),
                "--state-dir",
                str(tmp_path / "a"),
                "pair",
                "--server",
                server.url,
                "--code",
                code,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert untrusted.returncode == 1 and "TLS" in untrusted.stderr
        out = run(
            "vuoro-sync",
            "--state-dir",
            str(tmp_path / "b"),
            "pair",
            "--server",
            server.url,
            "--code",
            code,
            "--ca-bundle",
            str(cert),
        )
        assert out.startswith("paired as")
        run("vuoro-sync", "--state-dir", str(tmp_path / "b"), "run", "--once")
        assert leases_ready(tmp_path / "b")
    finally:
        server.stop()


def test_the_operator_sees_each_kiosks_last_heartbeat(server, tmp_path):
    kiosk = tmp_path / "kiosk"
    server.pair(kiosk, "door")  # its first sync sends a heartbeat
    issue_printed(kiosk, 1)
    listing = server.cli("kiosks", "--branch", "demo").splitlines()
    assert listing[0].split() == [
        "kiosk",
        "name",
        "tag",
        "last",
        "seen",
        "printer",
        "outbox",
        "parked",
        "version",
    ]
    fields = listing[1].split()
    assert fields[1:3] == ["door", "K1"] and fields[4:] == ["unknown", "0", "0", "0.1.0"]
    seen = datetime.fromisoformat(fields[3])
    assert timedelta(0) <= datetime.now(UTC) - seen < timedelta(minutes=2), "seen just now"


def server_has(server, ticket_id: str) -> bool:
    return server.sql("SELECT 1 FROM tickets WHERE id = ?", [ticket_id]) != []


def test_an_unpaired_kiosk_pairs_from_its_admin_menu(server, tmp_path):
    """The appliance's daemon starts unpaired and waits; a code typed into the admin
    menu reaches it through the state DB; a wrong code is reported, a right one
    pairs, and the ticket the kiosk printed before the pairing is delivered (its
    number falls in the first lease, which the kiosk then skips)."""
    from sync import devices

    kiosk = tmp_path / "kiosk"
    db = state.connect(kiosk / "state.db")
    tickets.apply_standalone_config(
        db,
        branch={"name": "x", "timezone": "Europe/Helsinki"},
        ticket={},
        services=[{"id": "payments", "prefix": "A", "names": {"en": "Payments"}}],
    )
    before = tickets.issue_ticket(db, "payments", language="en")
    tickets.mark_printed(db, before.id)
    daemon = SyncProcess(kiosk, "--wait-for-pairing", "--server", server.url)
    try:
        devices.request_pairing(db, "WRONG234")
        wait_until(lambda: devices.get(db, "pairing").state == "failed", what="refused")
        assert "code" in devices.get(db, "pairing").detail.lower()
        assert not (kiosk / "credentials.json").exists()
        devices.request_pairing(db, server.pair_code())
        wait_until(lambda: devices.get(db, "pairing").state == "paired", what="paired")
        wait_until(lambda: leases_ready(kiosk), what="leases after pairing")
        assert tickets.get_config(db, "server") == server.url
        wait_until(lambda: server_has(server, before.id), what="the early ticket delivered")
        wait_until(lambda: exchange.counts(db) == {"outbox": 0, "parked": 0}, what="recorded")
        after = tickets.issue_ticket(db, "payments", language="en")
        assert (before.display, after.display) == ("A001", "A002"), "A001 is not handed out twice"
    finally:
        daemon.stop()
        db.close()
    assert (kiosk / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_a_ticket_the_server_rejects_is_parked_on_the_kiosk_shown_and_never_dropped(
    server, tmp_path
):
    """README: rejected tickets are parked with their reason (`vuoro-sync status`
    lists them, the heartbeat counts them), never dropped, and they do not hold
    up the tickets behind them."""
    kiosk = tmp_path / "kiosk"
    server.pair(kiosk, "door")
    (stray,) = issue_printed(kiosk, 1)
    with sqlite3.connect(kiosk / "state.db") as db:  # a number no lease covers (a restored DB)
        db.execute("UPDATE tickets SET number = 950, display = 'A950' WHERE display = ?", [stray])
    (fine,) = issue_printed(kiosk, 1)
    run("vuoro-sync", "--state-dir", str(kiosk), "run", "--once")

    db = state.connect(kiosk / "state.db")
    try:
        rows = db.execute(
            "SELECT t.display, o.parked_reason, o.delivered_at IS NOT NULL FROM outbox o "
            "JOIN tickets t ON t.id = o.ticket_id ORDER BY t.kiosk_seq"
        ).fetchall()
        counts = exchange.counts(db)
    finally:
        db.close()
    assert rows == [("A950", "rejected:number_not_leased", 0), (fine, None, 1)]
    assert counts == {"outbox": 0, "parked": 1}
    status = run("vuoro-sync", "--state-dir", str(kiosk), "status")
    assert "outbox parked: 1" in status and "parked 1: rejected:number_not_leased" in status
    run("vuoro-sync", "--state-dir", str(kiosk), "run", "--once")  # tried again: still parked
    listing = server.cli("kiosks", "--branch", "demo").splitlines()[1].split()
    assert listing[6] == "1", "the heartbeat tells the server of the parked ticket"
    on_server = [r[0] for r in server.sql("SELECT display FROM tickets")]
    assert on_server == [fine]
