"""What the sync daemon reads from and writes to the kiosk's DB: the outbox it
sends, the server's answers (delivered, or parked and kept), the lease left."""

from __future__ import annotations

import pytest

from sync import exchange, protocol, tickets
from tests.test_tickets import standalone_db


@pytest.fixture
def db(tmp_path):
    return standalone_db(tmp_path / "state.db")


def outbox(db) -> dict[str, tuple]:
    """display -> (delivered, parked_reason, attempts)"""
    rows = db.execute(
        "SELECT t.display, o.delivered_at IS NOT NULL, o.parked_reason, o.attempts "
        "FROM outbox o JOIN tickets t ON t.id = o.ticket_id"
    ).fetchall()
    return {display: (bool(done), reason, attempts) for display, done, reason, attempts in rows}


def test_only_final_tickets_are_sent_oldest_first_and_a_batch_is_capped(db):
    printed = tickets.issue_ticket(db, "payments", language="fi")
    failed = tickets.issue_ticket(db, "permits", language="en")
    in_print = tickets.issue_ticket(db, "payments", language="fi")
    voided = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_printed(db, printed.id)
    tickets.mark_print_failed(db, failed.id, "paper out")
    db.execute("UPDATE tickets SET state = 'void' WHERE id = ?", [voided.id])
    db.conn.commit()

    sent = exchange.pending(db, limit=10)
    assert [t.id for t in sent] == [printed.id, failed.id, voided.id]  # in_print is not final
    assert [t.state for t in sent] == ["printed", "print_failed", "void"]
    first = sent[0]
    assert (first.service_id, first.day, first.number, first.display) == (
        "payments",
        printed.day,
        1,
        "A001",
    )
    assert (first.public_token, first.kiosk_seq, first.language) == (
        printed.public_token,
        printed.kiosk_seq,
        "fi",
    )
    assert sent[1].language == "en"
    assert [t.id for t in exchange.pending(db, limit=2)] == [printed.id, failed.id]
    assert in_print.id not in {t.id for t in sent}


def test_a_rejected_ticket_is_parked_with_its_reason_and_never_sent_again(db):
    issued = [tickets.issue_ticket(db, "payments", language="fi") for _ in range(4)]
    for ticket in issued[:3]:
        tickets.mark_printed(db, ticket.id)
    reason = "rejected:number not leased " + "x" * 300
    parked = exchange.record_results(
        db,
        [
            protocol.TicketResult(id=issued[0].id, result="created"),
            protocol.TicketResult(id=issued[1].id, result="duplicate"),
            protocol.TicketResult(id=issued[2].id, result=reason),
        ],
    )
    assert parked == 1
    assert outbox(db) == {
        "A001": (True, None, 1),
        "A002": (True, None, 1),
        "A003": (False, reason[:200], 1),
        "A004": (False, None, 0),
    }
    # The parked ticket stays in the DB, visible, and is not sent again.
    assert tickets.get_ticket(db, issued[2].id).state == "printed"
    assert exchange.pending(db, limit=10) == []
    tickets.mark_printed(db, issued[3].id)
    assert [t.id for t in exchange.pending(db, limit=10)] == [issued[3].id]
    assert exchange.counts(db) == {"outbox": 1, "parked": 1}


def test_an_answer_for_a_delivered_ticket_changes_nothing(db):
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_printed(db, ticket.id)
    assert exchange.record_results(db, [protocol.TicketResult(id=ticket.id, result="created")]) == 0
    # A reply lost and the batch sent again: the server now says duplicate, or
    # something else; the ticket stays delivered, not parked.
    exchange.record_results(db, [protocol.TicketResult(id=ticket.id, result="duplicate")])
    exchange.record_results(db, [protocol.TicketResult(id=ticket.id, result="rejected:late")])
    assert outbox(db) == {"A001": (True, None, 1)}
    assert exchange.counts(db) == {"outbox": 0, "parked": 0}


def test_counted_seq_stops_below_the_first_ticket_still_on_its_way(db):
    assert exchange.counted_seq(db) == 0
    issued = [tickets.issue_ticket(db, "payments", language="fi") for _ in range(4)]
    for ticket in issued:
        tickets.mark_printed(db, ticket.id)
    exchange.record_results(db, [protocol.TicketResult(id=issued[0].id, result="created")])
    assert exchange.counted_seq(db) == 1
    # A parked ticket is settled: nobody counts it, so it does not hold the mark back.
    exchange.record_results(db, [protocol.TicketResult(id=issued[1].id, result="rejected:x")])
    assert exchange.counted_seq(db) == 2
    # A void one neither.
    db.execute("UPDATE tickets SET state = 'void' WHERE id = ?", [issued[2].id])
    db.conn.commit()
    assert exchange.counted_seq(db) == 3
    exchange.record_results(db, [protocol.TicketResult(id=issued[3].id, result="duplicate")])
    assert exchange.counted_seq(db) == 4


def test_only_unused_server_leased_numbers_remain(db):
    day = tickets.branch_day(db, tickets.now_utc())
    tickets.set_config(db, "mode", "paired")
    assert exchange.leased_remaining(db, "payments", day) == 0
    exchange.add_lease(
        db, protocol.LeaseResponse(service_id="payments", day=day, first=101, last=110)
    )
    assert exchange.leased_remaining(db, "payments", day) == 10
    assert exchange.leased_remaining(db, "permits", day) == 0
    assert exchange.leased_remaining(db, "payments", "2000-01-01") == 0
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    assert ticket.number == 101
    assert exchange.leased_remaining(db, "payments", day) == 9
    for _ in range(9):
        tickets.issue_ticket(db, "payments", language="fi")
    assert exchange.leased_remaining(db, "payments", day) == 0
    assert exchange.newest_outbox_id(db) == 10
