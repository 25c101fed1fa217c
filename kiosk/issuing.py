"""The tap-to-paper path, off the UI thread.

One worker thread owns its own DB connection and the printer: it commits the
ticket (number, ticket row, outbox row in one transaction), tells the UI the
number, prints, records the outcome and tells the UI again. Jobs run one at a
time, in tap order. Nothing here touches the network or Kivy: results go back
through ``post``, which the app points at ``Clock.schedule_once``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from kiosk.config import KioskConfig
from kiosk.i18n import tr
from kiosk.paper import counter_ticket_content, ticket_content
from printer.backends import Backend
from printer.errors import CoverOpen, PaperOut, PrinterError, PrinterTimeout
from printer.layout import TicketContent, render_test_page, render_ticket
from sync import commands, devices, protocol, state, tickets
from sync.commands import PendingCommand
from sync.schedule import Availability
from sync.tickets import Service, Ticket

log = logging.getLogger("vuoro.kiosk.issuing")

Post = Callable[..., None]


@dataclass(frozen=True)
class Callbacks:
    """What the UI wants to hear, each called through ``post``."""

    committed: Callable[[Ticket], None]
    printed: Callable[[Ticket], None]
    print_failed: Callable[[Ticket, str], None]
    unavailable: Callable[[Availability | None], None]  # None: an error, not hours


class TicketIssuer:
    def __init__(
        self,
        db_path: Path,
        config: KioskConfig,
        backend: Backend,
        post: Post,
        logo: bytes = b"",
    ) -> None:
        self.db_path = db_path
        self.config = config
        self.backend = backend
        self.post = post
        self.logo = logo
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ticket")
        self._local = threading.local()

    def request(self, service: Service, language: str, callbacks: Callbacks) -> Future:
        """Queue one ticket; returns at once."""
        return self._executor.submit(self._issue, service, language, callbacks)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _db(self):
        if getattr(self._local, "db", None) is None:
            self._local.db = state.connect(self.db_path)
        return self._local.db

    def check_printer(self, report: Callable[[str], None]) -> Future:
        """Ask the printer how it is (off the UI thread); record and report its state."""
        return self._executor.submit(self._check_printer, report)

    def _check_printer(self, report: Callable[[str], None]) -> None:
        try:
            status = self.backend.status()
            state_name, detail = status.state, ""
        except PrinterError as exc:
            state_name, detail = printer_state_of(exc), str(exc)
        self._record_printer(state_name, detail)
        self.post(report, state_name)

    def _record_printer(self, state_name: str, detail: str = "") -> None:
        try:
            devices.record(self._db(), "printer", state_name, detail)
        except sqlite3.Error:
            log.exception("could not record the printer state")

    def _issue(self, service: Service, language: str, callbacks: Callbacks) -> None:
        try:
            ticket = tickets.issue_ticket(self._db(), service.id, language=language)
        except tickets.ServiceClosed as exc:  # hours or cap passed since the screen was drawn
            log.info("no ticket for %s: %s", service.id, exc.availability.status)
            self.post(callbacks.unavailable, exc.availability)
            return
        except Exception:  # nothing committed: the customer has no number
            log.exception("no ticket for %s", service.id)
            self.post(callbacks.unavailable, None)
            return
        log.info("committed %s (%s)", ticket.display, ticket.id)
        self.post(callbacks.committed, ticket)
        try:
            paper = tickets.service_for_ticket(self._db(), ticket)  # the queue before it
            data = self._render(ticket_content(self.config, ticket, paper))
            printer_status = self.backend.send(
                data, ticket.display, on_send=lambda: tickets.mark_handed(self._db(), ticket.id)
            )
        except tickets.TicketStateConflict as exc:  # decided elsewhere: nothing printed
            self._conflict(exc)
            self.post(callbacks.unavailable, None)
            return
        except Exception as exc:  # committed: the ticket stays valid, shown on screen
            if isinstance(exc, PrinterError):
                log.error("print of %s failed: %s", ticket.display, exc)
            else:
                log.exception("print of %s failed", ticket.display)
            self._record(tickets.mark_print_failed, ticket, str(exc) or repr(exc))
            self._record_printer(printer_state_of(exc), str(exc))
            self.post(callbacks.print_failed, ticket, str(exc))
            return
        self._record(tickets.mark_printed, ticket)
        self._record_printer(printer_status.state)
        if printer_status.state == "paper_near_end":
            log.warning("printer paper near its end: change the roll soon")
        log.info("printed %s (%d bytes)", ticket.display, len(data))
        self.post(callbacks.printed, ticket)

    def take_counter_tickets(self, db) -> dict[str, Future]:
        """Queue the counter tickets the sync daemon stored, by command id (``db``:
        the caller's connection, read once a second; a write only when there are some)."""
        return {
            command.id: self.print_counter_ticket(command)
            for command in commands.take(db, (commands.PRINT_TICKET,))
        }

    def print_counter_ticket(self, command: PendingCommand) -> Future:
        """Print a ticket staff gave at a counter (a ``print_ticket`` command), in
        turn with the customers' taps; the Future holds the command's result."""
        return self._executor.submit(self._print_counter_ticket, command)

    def _print_counter_ticket(self, command: PendingCommand) -> str:
        """Never a number of this kiosk's own and never into the outbox: the server
        has the ticket. Marked handed just before the first byte leaves
        (:mod:`sync.commands`), so a restart never prints it twice."""
        db = self._db()
        try:
            job = protocol.PrintTicket.model_validate(command.data)
        except ValidationError as exc:
            return self._finish(command, f"skipped:invalid:{exc.error_count()} errors")
        if commands.too_old(command):
            return self._finish(command, "skipped:too old")
        handed = []

        def hand_over() -> None:
            if not commands.begin_print(db, command.id):
                raise _AlreadyHanded(command.id)
            handed.append(True)

        try:
            service = tickets.get_service(db, job.service_id)
        except (LookupError, sqlite3.Error, ValueError):
            service = None  # the server's names are on the job
        try:
            data = self._render(counter_ticket_content(self.config, job, service))
            printer_status = self.backend.send(data, f"{job.number}-counter", on_send=hand_over)
        except _AlreadyHanded:
            log.warning("counter ticket %s was handed to the printer before: not again", job.number)
            return "skipped:printed before"
        except PrinterError as exc:  # the customer has the number from the counter's screen
            state_name = printer_state_of(exc)
            log.error("counter ticket %s not printed: %s", job.number, exc)
            self._record_printer(state_name, str(exc))
            return self._finish(command, f"failed:{state_name}")
        except Exception:  # not the printer's fault: its state stays as it was
            log.exception("counter ticket %s not printed", job.number)
            return self._finish(command, "failed:error")
        self._record_printer(printer_status.state)
        log.info("printed counter ticket %s (%d bytes)", job.number, len(data))
        return self._finish(command, "printed")

    def _finish(self, command: PendingCommand, result: str) -> str:
        try:
            commands.finish(self._db(), command.id, result)
        except sqlite3.Error:
            log.exception("could not record how command %s ended", command.id)
        if result != "printed":
            log.warning("print_ticket %s: %s", command.id, result)
        return result

    def _render(self, content: TicketContent) -> bytes:
        return render_ticket(content, self.backend.profile, logo=self.logo)

    def reprint_last(self) -> Future:
        """Print the last ticket again, marked as a copy; the Future holds its number."""
        return self._executor.submit(self._reprint_last)

    def _reprint_last(self) -> str:
        ticket = tickets.last_valid_ticket(self._db())
        if ticket is None:
            raise LookupError("no ticket to reprint yet")
        service = tickets.get_service(self._db(), ticket.service_id)
        content = ticket_content(self.config, ticket, service)
        content = replace(content, notice=tr("COPY", ticket.language))
        self.backend.send(self._render(content), f"{ticket.display}-copy")
        if ticket.state == "print_failed":
            tickets.mark_printed(self._db(), ticket.id)
        log.info("reprinted %s", ticket.display)
        return ticket.display

    def test_print(self) -> Future:
        """A test page from the admin menu; the Future holds the printer's state after it."""
        return self._executor.submit(self._test_print)

    def _test_print(self) -> str:
        try:
            status = self.backend.send(render_test_page(self.backend.profile), "test")
            state_name, detail = status.state, ""
        except PrinterError as exc:
            state_name, detail = printer_state_of(exc), str(exc)
        self._record_printer(state_name, detail)
        return state_name

    def _record(self, verb: Callable[..., None], ticket: Ticket, *args: str) -> None:
        """Record a print outcome; a DB failure here is logged, not shown."""
        try:
            verb(self._db(), ticket.id, *args)
        except tickets.TicketStateConflict as exc:
            self._conflict(exc)
        except sqlite3.Error:
            log.exception("could not record the print outcome of %s", ticket.display)

    def _conflict(self, exc: tickets.TicketStateConflict) -> None:
        """Another process decided this ticket: say so in the log, the admin menu
        and the heartbeat (``tickets`` device status), never carry on silently."""
        log.error("ticket state conflict: %s", exc)
        try:
            devices.record(self._db(), "tickets", "conflict", str(exc))
        except sqlite3.Error:
            log.exception("could not record the ticket state conflict")


class _AlreadyHanded(RuntimeError):
    """Raised before the first byte: this counter ticket went to the printer before."""


def printer_state_of(error: Exception) -> str:
    """The state word a print error stands for (see :mod:`sync.devices`)."""
    if isinstance(error, PaperOut):
        return "paper_out"
    if isinstance(error, CoverOpen):
        return "cover_open"
    if isinstance(error, PrinterTimeout):
        return "not_responding"
    if isinstance(error, PrinterError):
        return "offline"
    return "error"
