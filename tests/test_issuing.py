"""The tap-to-paper worker: commit, tell the UI, print, record, tell the UI."""

from __future__ import annotations

import threading

import pytest

from kiosk import config
from kiosk.issuing import Callbacks, TicketIssuer, printer_state_of
from printer.backends import HEALTHY
from printer.errors import CoverOpen, PaperOut, PrinterOffline, PrinterTimeout
from printer.render import render_bytes
from sync import devices, state, tickets
from tests.conftest import TWO_SERVICES


class RecordingBackend:
    profile = "TM-T20II"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.jobs: list[tuple[str, bytes]] = []

    def send(self, data: bytes, job: str, on_send=None) -> None:
        if self.error:
            raise self.error
        if on_send:
            on_send()
        self.jobs.append((job, data))
        return HEALTHY

    def status(self):
        return HEALTHY


def issue_one(tmp_path, backend, keep_issuer: list | None = None):
    settings = config.parse(TWO_SERVICES)
    db = state.connect(tmp_path / "state.db")
    tickets.apply_standalone_config(
        db,
        branch=settings.branch,
        ticket=settings.ticket,
        services=[{"id": s.id, "prefix": s.prefix, "names": s.names} for s in settings.services],
    )
    events: list = []
    done = threading.Event()
    issuer = TicketIssuer(tmp_path / "state.db", settings, backend, lambda fn, *a: fn(*a))
    callbacks = Callbacks(
        committed=lambda t: events.append(("committed", t.display)),
        printed=lambda t: (events.append(("printed", t.display)), done.set()),
        print_failed=lambda t, e: (events.append(("print_failed", t.display, e)), done.set()),
        unavailable=lambda e: (events.append(("unavailable", e)), done.set()),
    )
    service = tickets.listed_services(db)[0]
    issuer.request(service, "fi", callbacks)
    assert done.wait(30)
    if keep_issuer is None:
        issuer.shutdown()
    else:
        keep_issuer.append(issuer)
    return events, db


def test_a_printed_ticket_is_committed_first_and_recorded_after(tmp_path):
    backend = RecordingBackend()
    events, db = issue_one(tmp_path, backend)
    assert events == [("committed", "A001"), ("printed", "A001")]
    ((job, data),) = backend.jobs
    assert job == "A001" and "A001" in render_bytes(data)[0].lines
    assert [r["state"] for r in db["tickets"].rows] == ["printed"]
    assert devices.get(db, "printer").state == "ok"


def test_a_failed_print_keeps_the_ticket_valid_and_says_why(tmp_path):
    events, db = issue_one(tmp_path, RecordingBackend(PaperOut("paper out")))
    assert events == [("committed", "A001"), ("print_failed", "A001", "paper out")]
    row = next(iter(db["tickets"].rows))
    assert (row["state"], row["print_error"]) == ("print_failed", "paper out")
    assert db["outbox"].count == 1
    seen = devices.get(db, "printer")
    assert (seen.state, seen.detail) == ("paper_out", "paper out")


def test_an_unexpected_error_while_printing_is_a_print_failure_not_a_lost_ticket(tmp_path):
    events, db = issue_one(tmp_path, RecordingBackend(RuntimeError("driver bug")))
    assert events[-1] == ("print_failed", "A001", "driver bug")
    assert next(iter(db["tickets"].rows))["state"] == "print_failed"


def test_reprint_last_prints_a_marked_copy_and_settles_a_failed_print(tmp_path):
    backend = RecordingBackend(PaperOut("paper out"))
    kept: list = []
    _, db = issue_one(tmp_path, backend, kept)
    backend.error = None  # the roll was changed
    assert kept[0].reprint_last().result(timeout=30) == "A001"
    kept[0].shutdown()
    ((job, data),) = backend.jobs
    lines = render_bytes(data)[0].lines
    assert job == "A001-copy" and lines[0].strip() == "KOPIO" and "A001" in lines
    assert next(iter(db["tickets"].rows))["state"] == "printed"


def test_reprint_with_no_ticket_yet_says_so(tmp_path):
    settings = config.parse(TWO_SERVICES)
    state.connect(tmp_path / "state.db")
    issuer = TicketIssuer(tmp_path / "state.db", settings, RecordingBackend(), lambda f, *a: f(*a))
    with pytest.raises(LookupError, match="no ticket to reprint"):
        issuer.reprint_last().result(timeout=30)
    issuer.shutdown()


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (PaperOut("no paper"), "paper_out"),
        (CoverOpen("lid up"), "cover_open"),
        (PrinterTimeout("silent"), "not_responding"),
        (PrinterOffline("unplugged"), "offline"),
        (ValueError("a bug"), "error"),
    ],
)
def test_each_print_error_is_recorded_as_the_printer_state_staff_see(tmp_path, error, word):
    """The admin menu, the heartbeat and the home screen's notice read this word."""
    assert printer_state_of(error) == word
    events, db = issue_one(tmp_path, RecordingBackend(error))
    assert events[-1][0] == "print_failed"
    assert devices.get(db, "printer").state == word
    assert tickets.last_valid_ticket(db).state == "print_failed"
