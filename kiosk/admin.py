"""The hidden admin menu: what a technician needs to see, and what staff may do
(test print, reprint, sync now, pair, out of order, restart, reboot, power off).

Opened by holding the top-left corner (``[admin] hold_s``) or Ctrl+Alt+A, then
the PIN. It closes itself after ``[admin] idle_s`` untouched. Everything slow
(the PIN check, printing) runs off the UI thread and comes back by Clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from zoneinfo import ZoneInfo

import sqlite_utils
from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import Screen
from kivy.utils import escape_markup

from appliance import machine
from kiosk.config import KioskConfig
from kiosk.pinlock import PinLock, Verdict
from sync import clock, devices, exchange, tickets

log = logging.getLogger("vuoro.admin")

PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the server's pairing-code letters
PAIR_LENGTH = 8


class AdminScreen(Screen):
    title = StringProperty("Admin menu")
    facts = StringProperty("")
    message = StringProperty("")
    out_of_order = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        self.register_event_type("on_action")
        super().__init__(**kwargs)

    def on_action(self, action: str) -> None:
        """The menu's controller handles it."""


class ConfirmView(ModalView):
    question = StringProperty("")
    yes = StringProperty("Yes")

    def __init__(self, question: str, yes: str, then: Callable[[], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self.question, self.yes, self._then = question, yes, then

    def answer(self, confirmed: bool) -> None:
        self.dismiss()
        if confirmed:
            self._then()


class PairView(ModalView):
    code = StringProperty("")

    def __init__(self, then: Callable[[str], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self._then = then
        for letter in PAIR_ALPHABET:
            button = Factory.AdminButton(text=letter)
            button.bind(on_release=lambda b: self.type(b.text))
            self.ids.letters.add_widget(button)

    def type(self, letter: str) -> None:
        if len(self.code) < PAIR_LENGTH:
            self.code += letter

    def answer(self, confirmed: bool) -> None:
        if confirmed and len(self.code) != PAIR_LENGTH:
            return
        self.dismiss()
        if confirmed:
            self._then(self.code)


def _version() -> str:
    try:
        return version("vuoro")
    except PackageNotFoundError:
        return "unknown"


def local_time(stamp: str | None, zone: ZoneInfo) -> str:
    """A stored UTC time on the branch's wall clock, as the screen's clock shows it."""
    if not stamp:
        return "never"
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp[:19]
    if moment.tzinfo is None:  # kept in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def facts(db: sqlite_utils.Database, zone: ZoneInfo) -> list[tuple[str, str]]:
    """What the menu shows, as (label, value) lines, read from the state DB; times
    in ``zone`` (the branch's, like the clock), not the UTC they are kept in."""
    get = tickets.get_config
    paired = get(db, "mode") == "paired"
    server = devices.get(db, "server")
    pairing = devices.get(db, "pairing")
    printer = devices.get(db, "printer")
    counts = exchange.counts(db)
    leases = _numbers_left(db) if paired else "numbered by this kiosk"
    attempt = f"; pairing {pairing.state} {pairing.detail}" if pairing else ""
    return [
        ("Version", _version()),
        ("Addresses", ", ".join(machine.ip_addresses()) or "no network"),
        (
            "Pairing",
            f"paired as {get(db, 'kiosk_id')} with {get(db, 'server', '?')}"
            if paired
            else f"standalone (not paired){attempt}",
        ),
        (
            "Server",
            f"{server.state} since {local_time(server.updated_at, zone)}"
            if server
            else "never tried",
        ),
        ("Last sync", local_time(get(db, "last_sync_ok"), zone)),
        ("Outbox", f"{counts['outbox']} waiting, {counts['parked']} parked"),
        ("Numbers left today", leases or "none"),
        (
            "Printer",
            f"{printer.state.replace('_', ' ')} {printer.detail}".strip() if printer else "unknown",
        ),
        ("Kiosk", "OUT OF ORDER" if devices.is_out_of_order(db) else "open for customers"),
        ("Clock", _clock_fact(clock.read(db), zone)),
        *(("Problem", problem) for problem in devices.problems(db)),
    ]


def _clock_fact(reading: clock.Reading, zone: ZoneInfo) -> str:
    """Whether the kiosk knows the day: an unsure clock numbers from its own series."""
    if not reading.sure:
        return f"UNSURE ({reading.reason}): own series, no date on paper"
    where = "from the server" if reading.source == "server" else "synchronised"
    note = f"; {reading.reason}" if reading.reason else ""
    return f"{local_time(reading.moment.isoformat(), zone)} ({where}{note})"


def _numbers_left(db: sqlite_utils.Database) -> str:
    """Server-leased numbers left today per service (the kiosk's own series, for
    when they run out, never does)."""
    levels = tickets.lease_levels(db, tickets.branch_day(db, clock.read(db).moment))
    parts = []
    for service in tickets.listed_services(db):
        left = levels.get(service.id, {})
        parts.append(f"{service.prefix} {left.get('server', 0)}")
    return ", ".join(parts)


class AdminMenu:
    """The menu's controller: the PIN gate, the screens, the idle timer, the actions."""

    def __init__(self, app, settings: KioskConfig, db: sqlite_utils.Database) -> None:
        self.app = app
        self.admin = settings.admin
        self.zone = ZoneInfo(settings.branch["timezone"])  # the home screen's clock's
        self.db = db
        self.lock = PinLock(db, settings.admin.pin_hash)
        self._idle = None
        self._power_used = False

    # -- opening and closing ------------------------------------------------------

    def open_pin(self) -> None:
        if not self.lock.enabled:
            log.warning("admin menu asked for, but [admin] pin_hash is not set")
            return
        locked = self.lock.locked_s()
        self.app.idle_limit.cancel()  # staff at the kiosk: no customer's choices to wait for
        self.app.pin.reset(f"Locked: try again in {locked} s" if locked else "")
        self.app.screens.current = "pin"
        self.touched()
        log.info("admin PIN pad opened")

    def check_pin(self, pin: str) -> None:
        """While locked out no PIN is even looked at; otherwise argon2 runs off the UI."""
        locked = self.lock.locked_s()
        if locked:
            self._pin_checked(Verdict(False, locked_s=locked))
            return

        def work() -> None:
            ok = self.lock.verify(pin)
            Clock.schedule_once(lambda _dt: self._pin_checked(self.lock.record(ok)), 0)

        threading.Thread(target=work, name="pin", daemon=True).start()

    def _pin_checked(self, verdict: Verdict) -> None:
        if verdict.ok:
            log.warning("admin menu opened")
            self.show_menu()
        elif verdict.locked_s:
            log.warning("admin PIN: locked for %d s", verdict.locked_s)
            self.app.pin.reset(f"Locked: try again in {verdict.locked_s} s")
        else:
            log.warning("admin PIN: wrong (%d tries left)", verdict.tries_left)
            self.app.pin.reset(f"Wrong PIN: {verdict.tries_left} tries left")
        self.touched()

    def show_menu(self, message: str = "") -> None:
        menu = self.app.menu
        menu.facts = "\n".join(
            f"[b]{escape_markup(label)}[/b]  {escape_markup(value)}"
            for label, value in facts(self.db, self.zone)
        )
        menu.out_of_order = devices.is_out_of_order(self.db)
        menu.message = message
        self.app.screens.current = "admin"
        self.touched()

    def touched(self) -> None:
        """Any touch or key: the menu stays open another ``idle_s``."""
        if self._idle is None:
            self._idle = self.app.time_limit("admin", lambda: self.close("idle"))
        self._idle.start(self.admin.idle_s)  # warns first: "need more time?"

    def close(self, why: str = "closed") -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        for view in list(getattr(self.app.root_window, "children", [])):
            if isinstance(view, ModalView):
                view.dismiss()
        if self.app.screens.current in ("pin", "admin"):
            log.info("admin menu %s", why)
            self.app.go_home()

    @property
    def is_open(self) -> bool:
        return self.app.screens.current in ("pin", "admin")

    # -- actions ----------------------------------------------------------------------

    def act(self, action: str) -> None:
        self.touched()
        log.info("admin action: %s", action)
        if action == "close":
            self.close()
        elif action == "test_print":
            self._in_background(self.app.issuer.test_print(), "Test page printed; printer {}")
        elif action == "reprint":
            self._in_background(self.app.issuer.reprint_last(), "Reprinted {}")
        elif action == "sync_now":
            devices.request_sync(self.db)
            self.show_menu("Sync asked for; the daemon starts at once")
        elif action == "pair":
            PairView(then=self._pair).open()
        elif action == "toggle_open":
            devices.set_out_of_order(self.db, not devices.is_out_of_order(self.db))
            self.show_menu("Out of order" if devices.is_out_of_order(self.db) else "Open again")
        elif action == "restart":
            self._confirm("Restart the kiosk app?", "Yes, restart", self.app.restart)
        elif action == "reboot":
            self._confirm("Reboot the kiosk now?", "Yes, reboot", lambda: self._power("reboot"))
        elif action == "poweroff":
            self._confirm(
                "Power the kiosk off? Someone must switch it on again.",
                "Yes, power off",
                lambda: self._power("poweroff"),
            )

    def run_server_commands(self) -> None:
        """Commands an operator sent through the server (the sync daemon stores them)."""
        for kind in devices.take_commands(self.db):
            log.warning("server command: %s", kind)
            if kind == "sync_now":
                devices.request_sync(self.db)
            elif kind == "reload":
                self.app.restart()
            elif kind == "reboot":
                self._power("reboot")

    def _confirm(self, question: str, yes: str, then: Callable[[], None]) -> None:
        ConfirmView(question=question, yes=yes, then=then).open()

    def _pair(self, code: str) -> None:
        devices.request_pairing(self.db, code)
        self.show_menu(f"Pairing with {code}: the sync daemon is on it")

    def _power(self, which: str) -> None:
        if self._power_used:  # a second tap while the machine goes down does nothing
            return
        self._power_used = True
        command = self.admin.reboot_command if which == "reboot" else self.admin.poweroff_command
        problem = machine.run_command(command)
        if problem:
            self._power_used = False
            self.show_menu(f"Could not {which}: {problem}")
        else:
            self.show_menu("Rebooting…" if which == "reboot" else "Powering off…")

    def _in_background(self, future, done: str) -> None:
        self.app.menu.message = "Working…"

        def finished(f) -> None:
            try:
                message = done.format(str(f.result()).replace("_", " "))
            except Exception as exc:  # shown to the technician, not raised
                message = f"Failed: {exc}"
            Clock.schedule_once(lambda _dt: self.show_menu(message), 0)

        future.add_done_callback(finished)
