"""Issuing tickets: one transaction, numbers never reused, unprinted ones void."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

import pytest

from sync import exchange, protocol, state, tickets

SERVICES = [
    {"id": "payments", "prefix": "A", "names": {"fi": "Maksut"}},
    {"id": "permits", "prefix": "B", "names": {"fi": "Luvat"}, "texts": {"fi": "Ota henkkarit"}},
]


def standalone_db(path):
    db = state.connect(path)
    tickets.apply_standalone_config(
        db,
        branch={"name": "Testikonttori", "timezone": "Europe/Helsinki"},
        ticket={"url_template": "https://q.example/t/{token}"},
        services=SERVICES,
    )
    return db


@pytest.fixture
def db(tmp_path):
    return standalone_db(tmp_path / "state.db")


def test_numbers_count_up_per_service_and_each_ticket_has_an_outbox_row(db):
    issued = [
        tickets.issue_ticket(db, s, language="fi") for s in ("payments", "payments", "permits")
    ]
    assert [t.display for t in issued] == ["A001", "A002", "B001"]
    assert [t.kiosk_seq for t in issued] == [1, 2, 3]
    assert len({t.public_token for t in issued}) == 3
    assert all(len(t.public_token) == 22 for t in issued)  # 128 random bits, URL-safe
    assert [r["ticket_id"] for r in db["outbox"].rows] == [t.id for t in issued]
    assert {r["state"] for r in db["tickets"].rows} == {"committed"}


def test_numbers_restart_at_the_branch_local_midnight(db):
    before = datetime(2026, 11, 23, 21, 59, tzinfo=UTC)  # 23:59 in Helsinki
    after = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # 00:00 in Helsinki
    a = tickets.issue_ticket(db, "payments", language="fi", moment=before)
    b = tickets.issue_ticket(db, "payments", language="fi", moment=before)
    c = tickets.issue_ticket(db, "payments", language="fi", moment=after)
    assert [(t.day, t.display) for t in (a, b, c)] == [
        ("2026-11-23", "A001"),
        ("2026-11-23", "A002"),
        ("2026-11-24", "A001"),
    ]


def test_print_outcomes_and_voiding_at_start_up(db):
    printed = tickets.issue_ticket(db, "payments", language="fi")
    failed = tickets.issue_ticket(db, "payments", language="fi")
    lost = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_printed(db, printed.id)
    tickets.mark_print_failed(db, failed.id, "paper out")
    assert tickets.void_unprinted(db) == [lost.display]
    states = {r["display"]: (r["state"], r["print_error"]) for r in db["tickets"].rows}
    assert states == {
        "A001": ("printed", None),
        "A002": ("print_failed", "paper out"),
        "A003": ("void", "not printed before restart"),
    }
    assert tickets.issue_ticket(db, "payments", language="fi").display == "A004"
    assert tickets.void_unprinted(db) == ["A004"]


def test_a_print_outcome_for_a_void_ticket_is_an_error_and_it_stays_void(db):
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    tickets.void_unprinted(db)
    for verb, args in (
        (tickets.mark_printed, ()),
        (tickets.mark_print_failed, ("paper out",)),
        (tickets.mark_handed, ()),
    ):
        with pytest.raises(tickets.TicketStateConflict, match=r"A001 .* has it void"):
            verb(db, ticket.id, *args)
    assert tickets.get_ticket(db, ticket.id).state == "void"
    with pytest.raises(tickets.TicketStateConflict, match="not in the state DB"):
        tickets.mark_printed(db, "0" * 32)


def test_a_ticket_handed_to_the_printer_stays_valid_after_a_restart(db):
    """Bytes that left may be paper in a customer's hand: only the never-sent is voided."""
    sent = tickets.issue_ticket(db, "payments", language="fi")
    unsent = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_handed(db, sent.id)
    settled = tickets.settle_interrupted(db)
    assert (settled.voided, settled.kept) == (["A002"], ["A001"])
    assert tickets.get_ticket(db, sent.id).state == "print_failed"
    assert tickets.get_ticket(db, unsent.id).state == "void"
    row = db.execute("SELECT print_error FROM tickets WHERE id = ?", [sent.id]).fetchone()
    assert row[0] == tickets.INTERRUPTED


def test_unknown_and_unlisted_services_are_refused_and_nothing_is_written(db):
    with pytest.raises(tickets.UnknownService):
        tickets.issue_ticket(db, "nope", language="fi")
    tickets.apply_standalone_config(
        db, branch={"timezone": "UTC"}, ticket={}, services=SERVICES[:1]
    )
    with pytest.raises(tickets.UnknownService):
        tickets.issue_ticket(db, "permits", language="fi")
    assert db["tickets"].count == 0 and db["outbox"].count == 0
    assert [s.id for s in tickets.listed_services(db)] == ["payments"]


def test_a_closed_service_issues_nothing(db):
    db.execute("UPDATE services SET is_open = 0 WHERE id = 'payments'")
    with pytest.raises(tickets.ServiceClosed):
        tickets.issue_ticket(db, "payments", language="fi")
    assert db["tickets"].count == 0 and tickets.listed_services(db)[0].is_open is False


def test_without_a_lease_outside_standalone_mode_no_number_is_invented(db):
    tickets.set_config(db, "mode", "paired")
    with pytest.raises(tickets.NoNumberAvailable):
        tickets.issue_ticket(db, "payments", language="fi")
    assert db["tickets"].count == 0 and db["outbox"].count == 0


def test_a_failure_inside_the_transaction_leaves_no_half_ticket(db, monkeypatch):
    tickets.issue_ticket(db, "payments", language="fi")

    def broken_insert(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(tickets.uuid, "uuid4", broken_insert)
    with pytest.raises(OSError):
        tickets.issue_ticket(db, "payments", language="fi")
    monkeypatch.undo()
    assert db["tickets"].count == 1 and db["outbox"].count == 1
    assert tickets.issue_ticket(db, "payments", language="fi").display == "A002"


def test_listed_services_carry_names_texts_and_the_queue_snapshot(db):
    exchange.apply_heartbeat(
        db,
        protocol.HeartbeatResponse(
            server_time=tickets.iso(tickets.now_utc()),
            queue={"permits": protocol.QueueState(waiting=4, estimated_wait_s=600)},
        ),
    )
    payments, permits = tickets.listed_services(db)
    assert (payments.name("fi"), payments.name("sv"), payments.waiting) == (
        "Maksut",
        "Maksut",
        None,
    )
    assert (permits.text("fi"), permits.waiting, permits.estimated_wait_s) == (
        "Ota henkkarit",
        4,
        600,
    )


def _issue_many(args: tuple[str, int]) -> list[str]:
    path, count = args
    db = state.connect(path)
    return [tickets.issue_ticket(db, "payments", language="fi").display for _ in range(count)]


def test_concurrent_writers_never_share_a_number(tmp_path):
    path = tmp_path / "state.db"
    standalone_db(path).close()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_issue_many, [(str(path), 25)] * 4)
    numbers = [n for chunk in results for n in chunk]
    assert len(numbers) == 100
    assert sorted(numbers) == [f"A{i:03d}" for i in range(1, 101)]
    db = state.connect(path)
    assert db["outbox"].count == 100 and state.integrity_ok(db)


def test_a_paired_kiosk_out_of_leases_uses_its_own_reserve_series(db):
    tickets.set_config(db, "mode", "paired")
    tickets.set_config(db, "reserve_tag", "K3")
    db["leases"].insert(
        {
            "service_id": "payments",
            "day": tickets.branch_day(db, tickets.now_utc()),
            "first": 41,
            "last": 42,
            "next": 41,
            "source": "server",
        }
    )
    shown = [tickets.issue_ticket(db, "payments", language="fi").display for _ in range(4)]
    assert shown == ["A041", "A042", "AK3-01", "AK3-02"]
    rows = {r["display"]: (r["series"], r["number"]) for r in db["tickets"].rows}
    assert rows["AK3-02"] == ("K3", 2)
    # a new server lease is used again as soon as it arrives
    db["leases"].insert(
        {
            "service_id": "payments",
            "day": tickets.branch_day(db, tickets.now_utc()),
            "first": 90,
            "last": 99,
            "next": 90,
            "source": "server",
        }
    )
    assert tickets.issue_ticket(db, "payments", language="fi").display == "A090"


def test_pairing_a_standalone_kiosk_never_reuses_its_standalone_numbers(db):
    assert tickets.issue_ticket(db, "payments", language="fi").display == "A001"
    tickets.set_config(db, "mode", "paired")
    tickets.set_config(db, "reserve_tag", "K1")
    db["leases"].insert(
        {
            "service_id": "payments",
            "day": tickets.branch_day(db, tickets.now_utc()),
            "first": 1,
            "last": 10,
            "next": 1,
            "source": "server",
        }
    )
    assert tickets.issue_ticket(db, "payments", language="fi").display == "A002", "A001 is taken"


def test_recording_an_outcome_twice_is_harmless_and_each_keeps_what_it_says(db):
    """A reprint marks a print_failed ticket printed; a retried record is no conflict."""
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_handed(db, ticket.id)
    tickets.mark_print_failed(db, ticket.id, "x" * 600)
    tickets.mark_print_failed(db, ticket.id, "paper out")
    row = db.execute("SELECT state, print_error, handed_at FROM tickets").fetchone()
    assert row[0:2] == ("print_failed", "paper out") and row[2] is not None
    tickets.mark_print_failed(db, ticket.id, "y" * 600)
    assert len(db.execute("SELECT print_error FROM tickets").fetchone()[0]) == 500
    tickets.mark_printed(db, ticket.id)
    tickets.mark_printed(db, ticket.id)
    state_, error, printed_at = db.execute(
        "SELECT state, print_error, printed_at FROM tickets"
    ).fetchone()
    assert (state_, error) == ("printed", None) and printed_at is not None
    with pytest.raises(tickets.TicketStateConflict, match=r"A001 failed to print, .* printed"):
        tickets.mark_print_failed(db, ticket.id, "late news")
    with pytest.raises(tickets.TicketStateConflict, match=r"A001 handed to the printer"):
        tickets.mark_handed(db, ticket.id)


def test_start_up_settles_every_undecided_ticket_in_order_and_says_which(db):
    issued = [tickets.issue_ticket(db, "payments", language="fi") for _ in range(4)]
    for handed in (issued[1], issued[3]):
        tickets.mark_handed(db, handed.id)
    tickets.mark_printed(db, issued[3].id)
    settled = tickets.settle_interrupted(db)
    assert (settled.voided, settled.kept) == (["A001", "A003"], ["A002"])
    rows = db.execute("SELECT display, state, print_error FROM tickets ORDER BY kiosk_seq")
    assert rows.fetchall() == [
        ("A001", "void", "not printed before restart"),
        ("A002", "print_failed", tickets.INTERRUPTED),
        ("A003", "void", "not printed before restart"),
        ("A004", "printed", None),
    ]
    assert tickets.settle_interrupted(db) == tickets.Settled([], [])
    assert tickets.last_valid_ticket(db).display == "A004"
    assert tickets.void_unprinted(db) == []


def test_the_own_series_tag_is_the_reserve_tag_or_x_and_never_invented(db):
    assert tickets.own_series_tag(db) == "X"
    with db.conn:
        tickets.set_config(db, "mode", "paired")
    with pytest.raises(tickets.NoNumberAvailable, match="not paired"):
        tickets.own_series_tag(db)
    with db.conn:
        tickets.set_config(db, "reserve_tag", "K3")
    assert tickets.own_series_tag(db) == "K3"


def test_after_a_recovery_the_own_series_goes_on_above_its_floor_then_counts_on(db, monkeypatch):
    monkeypatch.setenv("VUORO_CLOCK_SYNCED", "0")  # unsure: the own series
    first = tickets.issue_ticket(db, "payments", language="fi")
    assert first.display == "AX-01"
    with db.conn:  # what sync.recovery leaves after a damaged DB
        tickets.set_config(
            db,
            tickets.OWN_SERIES_FLOOR_KEY,
            {"after_seq": first.kiosk_seq, "numbers": {"payments": 101}},
        )
    assert [tickets.issue_ticket(db, "payments", language="fi").display for _ in range(2)] == [
        "AX-102",
        "AX-103",
    ]
    assert tickets.issue_ticket(db, "permits", language="fi").display == "BX-01", "no floor: 1"
    with db.conn:
        tickets.set_config(db, tickets.KIOSK_SEQ_FLOOR_KEY, 10_000)
    assert tickets.issue_ticket(db, "payments", language="fi").kiosk_seq == 10_001


def test_an_unsure_day_is_never_before_the_last_tickets_day(db, monkeypatch):
    tickets.issue_ticket(db, "payments", language="fi", moment=datetime(2026, 12, 1, 9, tzinfo=UTC))
    monkeypatch.setenv("VUORO_CLOCK_SYNCED", "0")
    back = tickets.issue_ticket(
        db, "payments", language="fi", moment=datetime(2020, 1, 1, 9, tzinfo=UTC)
    )
    assert (back.day, back.display, back.time_source) == ("2026-12-01", "AX-01", "unsure")
    ahead = tickets.issue_ticket(
        db, "payments", language="fi", moment=datetime(2026, 12, 3, 9, tzinfo=UTC)
    )
    assert ahead.day == "2026-12-03", "a later guess is taken as it is"
