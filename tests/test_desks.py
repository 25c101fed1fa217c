"""Counters opened, paused and closed; tickets given at a counter; who called."""

from __future__ import annotations

import pytest

from server.counter import Counter
from server.staff import Staff
from server.storage import Rejected, calling
from sync import protocol
from tests.server_data import batch, paired, ticket, today

PASSWORD = "correct horse battery"


def test_a_counter_state_is_its_newest_change(storage):
    assert storage.counter_states("demo") == {}
    storage.set_counter_state("demo", "3", "open", services=["payments"])
    storage.set_counter_state("demo", "4", "open")
    storage.set_counter_state("demo", "3", "paused")
    states = storage.counter_states("demo")
    assert states["3"]["state"] == "paused" and states["4"]["state"] == "open"
    assert states["3"]["services"] == []  # a pause says nothing of services
    with pytest.raises(Rejected):
        storage.set_counter_state("demo", "3", "asleep")


def test_the_log_of_a_period_starts_with_each_counters_state_then(storage):
    storage.set_counter_state("demo", "1", "open", services=["payments"])
    first = storage.counter_log("demo", "0000", "9999")[0]["at"]
    storage.set_counter_state("demo", "1", "closed")
    log = storage.counter_log("demo", first + "~", "9999")  # after the opening
    assert [(e["counter"], e["state"]) for e in log] == [("1", "open"), ("1", "closed")]
    assert log[0]["at"] == first + "~"  # counted from the period's start


def test_a_counter_ticket_takes_a_number_no_kiosk_lease_holds(storage):
    kiosk = paired(storage)
    day = today(storage)
    lease = storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=3))
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    assert given["number"] == lease.last + 1 and given["display"].endswith(f"{lease.last + 1:03d}")
    storage.ingest(kiosk, batch(ticket(1, day=day, mono=1)))
    after = storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=1))
    assert after.first == given["number"] + 1
    assert storage.ticket_by_token(given["public_token"])["status"] == "waiting"
    assert storage.queue("demo")["payments"].waiting == 2
    with pytest.raises(Rejected):
        storage.issue_at_counter("demo", "no-such-service", staff_id=None)


def test_a_call_records_who_called_and_a_transfer_is_counted(storage):
    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "2", [])
    member = staff.session(staff.log_in("anna", PASSWORD, "127.0.0.1"))
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    assert Counter(staff.storage).act(member, "call").endswith("called")
    assert Counter(staff.storage).act(member, "transfer", "permits").endswith("permits")
    with storage.reading() as db:
        row = db.execute(
            "SELECT staff_id, transfers, origin FROM tickets WHERE id = ?", [given["id"]]
        ).fetchone()
    assert tuple(row) == (member.id, 1, "counter")


def test_an_organisation_manager_sees_the_branches_given_to_them(storage):
    staff = Staff(storage)
    staff.add("demo", "mia", PASSWORD, "1", [], role="organisation")
    staff.add("demo", "olli", PASSWORD, "1", [], role="manager")
    mia = staff.session(staff.log_in("mia", PASSWORD, "127.0.0.1"))
    olli = staff.session(staff.log_in("olli", PASSWORD, "127.0.0.1"))
    assert mia.manages and olli.manages
    storage.put_branch(
        {"id": "east", "name": "East", "timezone": "Europe/Helsinki", "ticket_url_template": ""}, []
    )
    with storage.transaction() as db:
        db.insert("staff_branches", {"staff_id": mia.id, "branch_id": "east"})
    assert staff.branches(mia) == ["demo", "east"]
    assert staff.branches(olli) == ["demo"]


def test_a_chosen_call_a_break_and_an_undo_on_each_database(storage):
    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "2", [])
    member = staff.session(staff.log_in("anna", PASSWORD, "127.0.0.1"))
    counter = Counter(storage, staff)
    first = storage.issue_at_counter("demo", "payments", staff_id=None)
    second = storage.issue_at_counter("demo", "payments", staff_id=None)
    storage.set_counter_state("demo", "2", "paused", member.id)
    assert not counter.work(member, "call").ok  # on a break: nobody is called here
    with pytest.raises(calling.CounterPaused):
        storage.call_ticket("demo", "2", second["id"], "urgent", member.id)
    assert counter.current(member) is None
    storage.set_counter_state("demo", "2", "open", member.id)
    with pytest.raises(Rejected):
        storage.call_ticket("demo", "2", second["id"], "  \u202e\n ", staff_id=member.id)
    called = storage.call_ticket("demo", "2", second["id"], "needs a wheelchair", member.id)
    assert called["number"] == second["display"]
    with storage.reading() as db:
        row = db.execute(
            "SELECT status, call_reason, staff_id FROM tickets WHERE id = ?", [second["id"]]
        ).fetchone()
    assert tuple(row) == ("called", "needs a wheelchair", member.id)
    assert not counter.work(member, "no_show").ok  # within the grace time
    with storage.transaction() as db:  # the call is older than the grace time
        db.execute("UPDATE tickets SET called_at = '2000-01-01T00:00:00.000+00:00'")
    assert counter.work(member, "no_show").ok
    assert counter.current(member) is None
    assert counter.work(member, "undo").ok
    assert counter.current(member)["number"] == second["display"]
    with storage.reading() as db:
        waiting = db.execute("SELECT status FROM tickets WHERE id = ?", [first["id"]]).fetchone()
    assert waiting[0] == "waiting"
