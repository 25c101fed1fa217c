"""The kiosk's idea of now (sync.clock) and the server's placing of what it
receives: a Pi without a real-time clock never numbers on a day it cannot tell,
and the server never queues a ticket on a day nobody calls."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.storage import Rejected, now
from sync import clock, protocol, schedule, tickets
from tests.server_data import batch, paired, ticket, today
from tests.test_tickets import standalone_db

REAL = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv(clock.SYNCED_ENV, "1")
    return standalone_db(tmp_path / "state.db")


def test_a_synchronised_clock_is_taken_as_it_is(db):
    reading = clock.read(db, REAL)
    assert (reading.moment, reading.sure, reading.source) == (REAL, True, "system")


def test_an_unsynchronised_clock_is_unsure_unless_the_config_trusts_it(db, monkeypatch):
    monkeypatch.setenv(clock.SYNCED_ENV, "0")
    reading = clock.read(db, REAL)
    assert (reading.sure, reading.reason) == (False, "clock not yet synchronised since boot")
    clock.set_policy(db, require_sync=False)  # a kiosk with a real-time clock of its own
    assert clock.read(db, REAL).sure


def test_a_clock_earlier_than_the_last_ticket_is_unsure(db):
    tickets.issue_ticket(db, "payments", language="fi", moment=REAL)
    assert clock.read(db, REAL - timedelta(seconds=clock.BEHIND_S - 1)).sure, "a small step back"
    behind = clock.read(db, REAL - timedelta(days=1))
    assert not behind.sure and "before the last ticket" in behind.reason


def test_the_servers_time_of_this_boot_corrects_a_wrong_wall_clock(db):
    mono = time.monotonic_ns()
    with db.conn:
        clock.remember_server_time(db, REAL.isoformat(), mono)
    later = mono + 90 * 10**9
    agreeing = clock.read(db, REAL + timedelta(seconds=100), later)
    assert (agreeing.source, agreeing.moment) == ("system", REAL + timedelta(seconds=100))
    wrong = clock.read(db, datetime(2020, 1, 1, tzinfo=UTC), later)
    assert (wrong.sure, wrong.source) == (True, "server")
    assert wrong.moment == REAL + timedelta(seconds=90), (
        "server time carried on the monotonic clock"
    )


def test_the_servers_time_of_an_earlier_boot_only_says_what_is_too_early(db):
    with db.conn:
        clock.set_config(
            db,
            clock.SERVER_CLOCK_KEY,
            {"server_time": REAL.isoformat(), "mono_ns": 0, "boot_id": "an-earlier-boot"},
        )
    assert clock.server_now(db) is None
    before = clock.read(db, REAL - timedelta(days=1))
    assert not before.sure and "before the server time" in before.reason
    assert clock.read(db, REAL + timedelta(hours=10)).sure


def test_an_unsure_clock_numbers_from_the_own_series_across_days_and_opens_the_hours(
    db, monkeypatch
):
    weekdays = schedule.Schedule(schedule.normalise_hours({"mon-fri": ["08:00-16:00"]}))
    with db.conn:
        db.execute(
            "UPDATE services SET schedule = ? WHERE id = 'payments'",
            [json.dumps(weekdays.to_json())],
        )
    sunday_night = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    with pytest.raises(tickets.ServiceClosed):
        tickets.issue_ticket(db, "payments", language="fi", moment=sunday_night)
    monkeypatch.setenv(clock.SYNCED_ENV, "0")
    first = tickets.issue_ticket(db, "payments", language="fi", moment=sunday_night)
    next_day = tickets.issue_ticket(
        db, "payments", language="fi", moment=sunday_night + timedelta(days=1)
    )
    assert (first.display, first.time_source) == ("AX-01", "unsure"), "hours unknown: it issues"
    assert next_day.display == "AX-02", "the own series does not restart with the day"
    monkeypatch.setenv(clock.SYNCED_ENV, "1")
    assert tickets.issue_ticket(db, "payments", language="fi", moment=REAL).display == "A001"


def test_the_own_series_wraps_after_999_and_skips_a_number_still_held_that_day(db, monkeypatch):
    monkeypatch.setenv(clock.SYNCED_ENV, "0")
    day = tickets.issue_ticket(db, "payments", language="fi", moment=REAL)  # AX-01
    with db.conn:
        db.execute("UPDATE tickets SET number = 998, display = 'AX-998' WHERE id = ?", [day.id])
    assert tickets.issue_ticket(db, "payments", language="fi", moment=REAL).display == "AX-999"
    assert tickets.issue_ticket(db, "payments", language="fi", moment=REAL).display == "AX-01"


# -- the server ---------------------------------------------------------------------


def _unsure(n: int, *, day: str, mono: int, boot: str = "boot") -> protocol.TicketIn:
    return ticket(n, day=day, series="K1", mono=mono).model_copy(
        update={
            "time_source": "unsure",
            "issued_at": "2020-01-01T08:00:00+00:00",
            "boot_id": boot,
            "display": f"AK1-{n:02d}",
        }
    )


def test_the_server_queues_an_unsure_ticket_on_the_real_day_by_the_monotonic_clock(storage):
    kiosk = paired(storage)
    sent_mono = 10 * 60 * 10**9
    tenth_minute = _unsure(1, day="2020-01-01", mono=sent_mono - 60 * 10**9)
    storage.ingest(kiosk, batch(tenth_minute, mono=sent_mono))
    with storage.reading() as db:
        day, status, queued = db.execute("SELECT day, status, queued_at FROM tickets").fetchone()
    assert (day, status) == (today(storage), "waiting")
    assert abs(datetime.fromisoformat(queued) - (now() - timedelta(minutes=1))) < timedelta(
        seconds=5
    )
    called = storage.call_next("demo", "1")
    assert called is not None and called["number"] == "AK1-01", "somebody calls it"


def test_an_unsure_ticket_of_another_boot_is_parked_for_staff_who_can_queue_it(storage):
    kiosk = paired(storage)
    lost_boot = _unsure(2, day="2020-01-01", mono=5, boot="an-earlier-boot")
    assert storage.ingest(kiosk, batch(lost_boot, mono=10))[0].result == "created"
    assert storage.call_next("demo", "1") is None, "not in a queue on a guessed day"
    parked = storage.parked("demo")
    assert [(p["number"], p["reason"]) for p in parked] == [("AK1-02", "issue_time_unknown")]
    assert storage.ticket_by_token(lost_boot.public_token)["status"] == "parked"
    assert storage.queue_parked("demo", parked[0]["id"]) == ""
    assert storage.parked("demo") == []
    assert storage.call_next("demo", "1")["number"] == "AK1-02"
    assert storage.queue_parked("demo", parked[0]["id"]) == "no such parked ticket"


def test_leases_are_for_the_branchs_today_only(storage):
    kiosk = paired(storage)
    local = now().astimezone(ZoneInfo("Europe/Helsinki"))  # the demo branch's zone
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    near = timedelta(minutes=15)
    for other, allowed in (
        (local - timedelta(days=1), local - midnight < near),
        (local + timedelta(days=1), midnight + timedelta(days=1) - local < near),
    ):
        request = protocol.LeaseRequest(
            service_id="payments", day=other.date().isoformat(), count=5
        )
        if allowed:  # around midnight a kiosk a few minutes off may ask for the next day
            continue
        with pytest.raises(Rejected, match="day_out_of_range"):
            storage.lease(kiosk, request)
    lease = storage.lease(
        kiosk, protocol.LeaseRequest(service_id="payments", day=today(storage), count=5)
    )
    assert (lease.first, lease.last) == (1, 5)


def test_timesyncds_flag_says_synchronised_even_where_the_kernel_cannot_be_asked(
    tmp_path, monkeypatch
):
    """The kiosk's unit has ProtectClock=yes, which forbids adjtimex(2) altogether;
    systemd-timesyncd's flag in /run (empty at each boot) still tells."""
    monkeypatch.delenv(clock.SYNCED_ENV, raising=False)
    flag = tmp_path / "synchronized"
    monkeypatch.setattr(clock, "TIMESYNCD_FLAG", str(flag))
    flag.touch()
    assert clock.system_synced() is True
    monkeypatch.setenv(clock.SYNCED_ENV, "0")
    assert clock.system_synced() is False, "the override wins"


def test_the_kiosk_unit_waits_for_the_saved_clock_but_never_for_ntp():
    units = Path(__file__).resolve().parent.parent / "systemd"
    kiosk = (units / "vuoro-kiosk.service").read_text()
    assert "After=time-set.target" in kiosk, "never a 1970 clock on the first ticket"
    orders = [line for line in kiosk.splitlines() if line.startswith(("After=", "Wants="))]
    assert not any("time-sync" in line for line in orders), "the screen does not wait for NTP"
    assert "ProtectClock=yes" in kiosk, "hence the timesyncd flag, not adjtimex"
    assert "time-set.target" in (units / "vuoro-sync.service").read_text()
