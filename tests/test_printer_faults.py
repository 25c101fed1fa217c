"""Every printer fault through a real link: the emulator in its own process,
on TCP or a serial pty, and the backend the kiosk uses.

The rules: the job ends within its bounded timeout, a fault is never reported
as "printed", and the printer's state is named.
"""

from __future__ import annotations

import time

import pytest

from printer.backends import NetworkBackend, SerialBackend
from printer.errors import CoverOpen, PaperOut, PrinterError, PrinterOffline, PrinterTimeout
from printer.layout import TicketContent, render_ticket
from printer.render import read_transcript
from tests.emulator_process import TIMEOUT, Emulator
from tests.server_process import free_port

SLACK = 8.0  # a liveness bound for a loaded machine, not a speed target: a hang is 60 s+
TICKET = render_ticket(
    TicketContent(
        branch="Testi",
        number="A007",
        service="Maksut",
        issued="nyt",
        url="https://jono.example.fi/t/AAAAAAAAAAAAAAAAAAAAAA",
    )
)


def timed_send(backend) -> tuple[float, object]:
    start = time.monotonic()
    try:
        result = backend.send(TICKET, "A007")
    except PrinterError as exc:
        result = exc
    return time.monotonic() - start, result


@pytest.mark.parametrize("pty", [False, True], ids=["tcp", "serial"])
def test_a_healthy_printer_prints_and_says_so(emulator, pty):
    printer = emulator(pty=pty)
    _, status = timed_send(printer.backend())
    assert not isinstance(status, Exception), status
    assert status.state == "ok"
    (png,) = printer.wait_printed(1)
    assert "A007" in read_transcript(png).splitlines()
    assert printer.backend().status().state == "ok"


@pytest.mark.parametrize("pty", [False, True], ids=["tcp", "serial"])
def test_paper_near_end_still_prints_and_warns(emulator, pty):
    printer = emulator("--paper-near-end", pty=pty)
    _, status = timed_send(printer.backend())
    assert status.state == "paper_near_end" and status.can_print
    assert len(printer.wait_printed(1)) == 1


@pytest.mark.parametrize(
    ("flag", "error", "state"),
    [("--paper-out", PaperOut, "paper_out"), ("--cover-open", CoverOpen, "cover_open")],
)
@pytest.mark.parametrize("pty", [False, True], ids=["tcp", "serial"])
def test_paper_out_and_cover_open_refuse_before_printing(emulator, flag, error, state, pty):
    printer = emulator(flag, pty=pty)
    elapsed, result = timed_send(printer.backend())
    assert isinstance(result, error), result
    assert elapsed < TIMEOUT + SLACK
    assert printer.backend().status().state == state
    time.sleep(0.3)
    assert printer.printed() == []


@pytest.mark.parametrize("pty", [False, True], ids=["tcp", "serial"])
def test_a_hung_printer_is_a_bounded_failure_not_a_print(emulator, pty):
    printer = emulator("--hang", pty=pty)
    elapsed, result = timed_send(printer.backend())
    assert isinstance(result, PrinterTimeout), result
    assert elapsed < TIMEOUT + SLACK
    assert printer.backend().status().state == "unknown", "no answer is unknown, not ok"


def test_a_printer_that_never_answers_status_is_never_reported_printed(emulator):
    printer = emulator("--mute")
    _, result = timed_send(printer.backend())
    assert isinstance(result, PrinterTimeout) and "may not have printed" in str(result)
    # configured as a one-way printer, the same one prints "blind" and says so
    _, status = timed_send(printer.backend(query_status=False))
    assert status.state == "unknown"


def test_a_dropped_connection_mid_ticket_is_a_failure(emulator):
    printer = emulator("--drop-after", "100")
    elapsed, result = timed_send(printer.backend())
    assert isinstance(result, PrinterOffline | PrinterTimeout), result
    assert elapsed < TIMEOUT + SLACK


def test_a_slow_link_is_cut_off_at_the_deadline(emulator):
    printer = emulator("--slow", "50")  # 320 bytes would take 6 s
    elapsed, result = timed_send(printer.backend())
    assert isinstance(result, PrinterTimeout), result
    assert elapsed < TIMEOUT + SLACK


def test_a_slow_but_fast_enough_link_prints(emulator):
    printer = emulator("--slow", "2000")
    _, status = timed_send(printer.backend())
    assert not isinstance(status, Exception), status
    assert len(printer.wait_printed(1)) == 1


def test_nobody_listening_is_offline_at_once():
    elapsed, result = timed_send(NetworkBackend("127.0.0.1", 9, timeout=TIMEOUT))
    assert isinstance(result, PrinterOffline) and elapsed < TIMEOUT
    _, result = timed_send(SerialBackend("/dev/ttyVUORO-none", timeout=TIMEOUT))
    assert isinstance(result, PrinterOffline)


def test_a_printer_switched_off_and_on_again_is_found_again(tmp_path):
    port = free_port()  # ours while the printer is off, too
    first = Emulator(tmp_path / "out", port=port)
    backend = first.backend()
    assert backend.send(TICKET, "A007").state == "ok"
    first.stop()  # unplugged
    _, result = timed_send(backend)
    assert isinstance(result, PrinterOffline)
    again = Emulator(tmp_path / "out", port=port)  # plugged back in, same address
    try:
        assert backend.send(TICKET, "A008").state == "ok"
    finally:
        again.stop()
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
