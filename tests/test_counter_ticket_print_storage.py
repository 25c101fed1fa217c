"""Which kiosk prints a ticket given at a counter, what it is sent, and what
staff learn of the outcome: the storage verbs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.storage import Rejected
from server.storage.common import iso, now
from sync import protocol
from tests.server_data import paired

BEAT = {"accepts": ["print_ticket"], "printer": "ok"}


def beat(storage, kiosk: dict, **said) -> list[protocol.Command]:
    return storage.heartbeat(kiosk, protocol.Heartbeat(**{**BEAT, **said}))


def test_the_kiosk_heard_most_recently_with_a_ready_printer_gets_the_ticket(storage):
    door, lobby, attic = paired(storage, "door"), paired(storage, "lobby"), paired(storage, "attic")
    given = storage.issue_at_counter("demo", "permits", staff_id=None)
    assert storage.print_at_kiosk("demo", given["id"]) is None, "none heard from yet"
    beat(storage, attic)
    beat(storage, door, printer="unknown")  # never asked its printer: a last resort
    beat(storage, lobby)
    # attic was heard from longest ago: a kiosk silent for three heartbeats is not asked
    with storage.transaction() as db:
        db.execute(
            "UPDATE kiosks SET last_seen_at = ? WHERE id = ?",
            [iso(now() - timedelta(seconds=3 * protocol.HEARTBEAT_S + 5)), attic["id"]],
        )
    assert storage.print_at_kiosk("demo", given["id"], language="sv") == "lobby"
    (command,) = beat(storage, lobby, printer="cover_open")  # delivered; then the cover opened
    assert storage.print_at_kiosk("demo", given["id"]) == "door"
    assert [c.kind for c in beat(storage, door, printer="unknown")] == ["print_ticket"]
    data = protocol.PrintTicket.model_validate(command.data)
    assert data.number == given["display"] and data.language == "sv"
    assert data.service_names["sv"] == "Tillstånd och licenser"
    assert data.url == f"http://127.0.0.1:8000/t/{given['public_token']}"
    assert data.waiting == 0 and data.ticket_id == given["id"]
    assert beat(storage, lobby) == [], "delivered once"


def test_the_outcome_comes_back_with_a_heartbeat_of_the_kiosk_that_printed(storage):
    door, lobby = paired(storage, "door"), paired(storage, "lobby")
    beat(storage, door)
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    assert storage.print_outcome("demo", given["id"]) is None
    assert storage.print_at_kiosk("demo", given["id"]) == "door"
    assert storage.print_outcome("demo", given["id"]) == {
        "kiosk": "door",
        "state": "queued",
        "detail": "",
    }
    (command,) = beat(storage, door)
    assert storage.print_outcome("demo", given["id"])["state"] == "sent"
    result = protocol.CommandResult(id=command.id, result="failed:paper_out")
    beat(storage, lobby, results=[result])  # not lobby's command: ignored
    assert storage.print_outcome("demo", given["id"])["state"] == "sent"
    beat(storage, door, results=[result, protocol.CommandResult(id="no-such", result="x")])
    assert storage.print_outcome("demo", given["id"]) == {
        "kiosk": "door",
        "state": "failed",
        "detail": "paper_out",
    }
    assert "results" not in storage.kiosks("demo")[0], "the kiosk list shows what it said"


def test_a_ticket_no_longer_in_the_queue_is_not_printed(storage):
    door = paired(storage, "door")
    beat(storage, door)
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    assert storage.cancel(given["public_token"])
    with pytest.raises(Rejected, match="cancelled"):
        storage.print_at_kiosk("demo", given["id"])
    with pytest.raises(Rejected):  # another branch's ticket
        storage.print_at_kiosk("other", given["id"])
