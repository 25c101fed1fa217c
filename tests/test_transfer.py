"""Moving an office's SQLite file to PostgreSQL, and backups while serving."""

from __future__ import annotations

import sqlite3
import subprocess
import threading

import pytest

from server import branch_file
from server.staff import Staff
from server.storage import Storage
from sync import protocol
from tests.server_data import DEMO, batch, ticket, today
from tests.server_process import BIN, run

PASSWORD = "a quiet harbour 42"


def _office(storage: Storage) -> dict:
    """A day's worth of everything: kiosks, leases, tickets, calls, staff, feedback."""
    reply = storage.pair(storage.new_pairing_code("demo"), "door")
    kiosk = storage.kiosk_for_token(reply.token)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=50))
    storage.ingest(kiosk, batch(*(ticket(n, day=day) for n in range(1, 31))))
    storage.call_next("demo", "1")
    storage.call_next("demo", "1", finish="served")
    storage.send_command(kiosk["id"], "sync_now")
    Staff(storage).add("demo", "maija", PASSWORD, "2", [], "manager")
    storage.give_feedback("token-0000000000000001", 5, "kiitos")
    return {"token": reply.token, "kiosk": kiosk, "day": day}


def test_an_office_moves_from_sqlite_to_postgresql_with_one_command(tmp_path, postgres_url):
    office = Storage(tmp_path / "server.db")
    office.put_branch(*branch_file.load(DEMO))
    made = _office(office)
    said = run("vuoro-server", "--db", str(tmp_path / "server.db"), "copy-to", postgres_url)
    assert "tickets" in said and " 30 rows" in said, said

    fleet = Storage(postgres_url)
    kiosk = fleet.kiosk_for_token(made["token"])  # the kiosk goes on with its token
    assert kiosk["id"] == made["kiosk"]["id"]
    assert fleet.queue("demo") == office.queue("demo")
    assert fleet.daily_stats("demo") == office.daily_stats("demo")
    assert Staff(fleet).log_in("maija", PASSWORD, "10.0.0.1"), "staff log in as before"
    lease = fleet.lease(
        kiosk, protocol.LeaseRequest(service_id="payments", day=made["day"], count=10)
    )
    assert lease.first == 51, "numbering goes on after the copied leases"
    assert fleet.send_command(kiosk["id"], "reload"), "new rows get new ids"
    assert [c.kind for c in fleet.heartbeat(kiosk, protocol.Heartbeat())] == ["sync_now", "reload"]
    assert fleet.call_next("demo", "1", finish="served")["number"] == "A003"


def test_a_copy_only_goes_into_an_empty_database(tmp_path, postgres_url):
    office = Storage(tmp_path / "server.db")
    office.put_branch(*branch_file.load(DEMO))
    _office(office)
    run("vuoro-server", "--db", str(tmp_path / "server.db"), "copy-to", postgres_url)
    again = subprocess.run(
        [BIN / "vuoro-server", "--db", str(tmp_path / "server.db"), "copy-to", postgres_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "empty" in again.stderr, again.stderr
    with Storage(postgres_url).reading() as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 30


def test_a_backup_taken_while_tickets_arrive_is_whole(storage, tmp_path):
    reply = storage.pair(storage.new_pairing_code("demo"), "door")
    kiosk = storage.kiosk_for_token(reply.token)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=400))
    stop = threading.Event()

    def arriving() -> None:
        for n in range(1, 401):
            if stop.is_set():
                return
            storage.ingest(kiosk, batch(ticket(n, day=day)))

    writer = threading.Thread(target=arriving)
    writer.start()
    try:
        saved = run("vuoro-server", "--db", storage.target, "backup", str(tmp_path / "backup"))
    finally:
        stop.set()
        writer.join()
    assert "saved" in saved
    assert (tmp_path / "backup").stat().st_mode & 0o077 == 0, "tokens and hashes stay private"
    restored = _restore(storage, tmp_path / "backup")
    with restored.reading() as db:
        tickets = db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        applied = db.execute("SELECT applied_seq FROM kiosks").fetchone()[0]
    assert tickets == applied, "each ticket with its kiosk's count: one moment, whole"
    assert restored.kiosk_for_token(reply.token)["id"] == kiosk["id"]


def _restore(storage: Storage, backup) -> Storage:
    """As README says: SQLite, the file put back; PostgreSQL, pg_restore."""
    if storage.path is not None:
        with sqlite3.connect(backup) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return Storage(backup)
    url = storage.database.url
    fresh = f"{url.database}_restored"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    subprocess.run(["psql", "-q", "-d", admin, "-c", f"CREATE DATABASE {fresh}"], check=True)
    target = url.set(drivername="postgresql", database=fresh).render_as_string(False)
    subprocess.run(["pg_restore", "--no-owner", "-d", target, str(backup)], check=True)
    return Storage(url.set(database=fresh).render_as_string(False))


def test_a_backup_never_overwrites_a_file(storage, tmp_path):
    (tmp_path / "backup").write_text("yesterday's")
    done = subprocess.run(
        [BIN / "vuoro-server", "--db", storage.target, "backup", str(tmp_path / "backup")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "exists" in done.stderr
    assert (tmp_path / "backup").read_text() == "yesterday's"


@pytest.mark.parametrize("target", ["not a url://", "mysql://root@localhost/x"])
def test_copy_to_refuses_what_is_not_a_database_url(tmp_path, target):
    done = subprocess.run(
        [BIN / "vuoro-server", "--db", str(tmp_path / "server.db"), "copy-to", target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
