"""The hidden admin menu: what a technician needs to see, and what staff may do
(test print, reprint, sync now, pair, out of order, restart, reboot, power off).

Opened by holding the top-left corner (``[admin] hold_s``) or Ctrl+Alt+A, then
the PIN. It closes itself after ``[admin] idle_s`` untouched. Everything slow
(the PIN check, printing) runs off the UI thread and comes back by Clock.

The menu and its PIN pad speak the kiosk's own language (``[kiosk] language``,
the branch's), whichever language the last customer chose: the staff of the
branch read them. Their words come from the one catalogue like the customers'
(a missing one falls back to English); log lines stay English for technicians.
"""

from __future__ import annotations

import logging
import re
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
from kiosk.i18n import ntr, ptr, tr
from kiosk.pinlock import PinLock, Verdict
from sync import clock, devices, exchange, tickets

log = logging.getLogger("vuoro.admin")

PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the server's pairing-code letters
PAIR_LENGTH = 8


class AdminScreen(Screen):
    language = StringProperty("en")  # the kiosk's, not the customer's (admin.kv reads it)
    facts = StringProperty("")
    message = StringProperty("")
    out_of_order = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        self.register_event_type("on_action")
        super().__init__(**kwargs)

    def on_action(self, action: str) -> None:
        """The menu's controller handles it."""


class ConfirmView(ModalView):
    language = StringProperty("en")
    question = StringProperty("")
    yes = StringProperty("")

    def __init__(
        self, question: str, yes: str, then: Callable[[], None], language: str, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.question, self.yes, self._then, self.language = question, yes, then, language

    def answer(self, confirmed: bool) -> None:
        self.dismiss()
        if confirmed:
            self._then()


class PairView(ModalView):
    language = StringProperty("en")
    code = StringProperty("")

    def __init__(self, then: Callable[[str], None], language: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._then, self.language = then, language
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


def _version(language: str) -> str:
    try:
        return version("vuoro")
    except PackageNotFoundError:
        return tr("unknown", language)


def local_time(stamp: str | None, zone: ZoneInfo, language: str = "en") -> str:
    """A stored UTC time on the branch's wall clock, as the screen's clock shows it."""
    if not stamp:
        return tr("never", language)
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp[:19]
    if moment.tzinfo is None:  # kept in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def state_word(state: str, language: str) -> str:
    """A device's state word (``sync.devices``: printer, server, pairing) as staff
    read it; one this menu does not know is shown as it is stored."""
    words = {
        # Translators: the admin menu's device states (printer, server, pairing)
        "ok": ptr("device state", "ok", language),
        "unknown": ptr("device state", "unknown", language),
        "paper_near_end": ptr("device state", "paper near end", language),
        "paper_out": ptr("device state", "paper out", language),
        "cover_open": ptr("device state", "cover open", language),
        "offline": ptr("device state", "offline", language),
        "not_responding": ptr("device state", "not responding", language),
        "error": ptr("device state", "error", language),
        "unreachable": ptr("device state", "unreachable", language),
        "not_authorized": ptr("device state", "not authorized", language),
        "requested": ptr("device state", "requested", language),
        "failed": ptr("device state", "failed", language),
        "paired": ptr("device state", "paired", language),
    }
    return words.get(state, state.replace("_", " "))


def _with_detail(status: devices.DeviceStatus, language: str) -> str:
    """ "paper out (the roll's last metres)": the state in ``language``, its detail
    as recorded (an exception's own text)."""
    word = state_word(status.state, language)
    return f"{word} ({status.detail})" if status.detail else word


def facts(db: sqlite_utils.Database, zone: ZoneInfo, language: str = "en") -> list[tuple[str, str]]:
    """What the menu shows, as (label, value) lines in ``language``, read from the
    state DB; times in ``zone`` (the branch's, like the clock), not the UTC they
    are kept in. Device details (an error's own text) stay as recorded."""
    get = tickets.get_config
    paired = get(db, "mode") == "paired"
    server = devices.get(db, "server")
    pairing = devices.get(db, "pairing")
    printer = devices.get(db, "printer")
    counts = exchange.counts(db)
    leases = _numbers_left(db) if paired else tr("numbered by this kiosk", language)
    if paired:
        pairing_fact = tr(
            "paired as {kiosk} with {server}",
            language,
            kiosk=get(db, "kiosk_id"),
            server=get(db, "server", "?"),
        )
    elif pairing:
        pairing_fact = tr(
            "standalone (not paired); pairing {state}",
            language,
            state=_with_detail(pairing, language),
        )
    else:
        pairing_fact = tr("standalone (not paired)", language)
    return [
        (tr("Version", language), _version(language)),
        (
            tr("Addresses", language),
            ", ".join(machine.ip_addresses()) or tr("no network", language),
        ),
        (tr("Pairing", language), pairing_fact),
        (
            tr("Server", language),
            tr(
                "{state} since {time}",
                language,
                state=state_word(server.state, language),
                time=local_time(server.updated_at, zone, language),
            )
            if server
            else tr("never tried", language),
        ),
        (tr("Last sync", language), local_time(get(db, "last_sync_ok"), zone, language)),
        (
            tr("Outbox", language),
            tr(
                "{outbox} waiting, {parked} parked",
                language,
                outbox=counts["outbox"],
                parked=counts["parked"],
            ),
        ),
        (tr("Numbers left today", language), leases or tr("none", language)),
        (
            tr("Printer", language),
            _with_detail(printer, language) if printer else state_word("unknown", language),
        ),
        (
            tr("Kiosk", language),
            tr("OUT OF ORDER", language)
            if devices.is_out_of_order(db)
            else tr("open for customers", language),
        ),
        (tr("Clock", language), _clock_fact(clock.read(db), zone, language)),
        *((tr("Problem", language), problem) for problem in devices.problems(db)),
    ]


#: sync.clock's reasons, to be said in the menu's language (any other: as it is).
_CLOCK_REASONS = (
    (re.compile(r"clock not yet synchronised since boot$"), "boot"),
    (re.compile(r"clock is before the last ticket \((?P<time>.*)\)$"), "last_ticket"),
    (re.compile(r"clock is before the server time it saw \((?P<time>.*)\)$"), "server_time"),
    (re.compile(r"wall clock (?P<offset>[+-]\d+) s off the server's$"), "offset"),
)


def _clock_reason(reason: str, language: str) -> str:
    for pattern, kind in _CLOCK_REASONS:
        found = pattern.match(reason)
        if not found:
            continue
        if kind == "boot":
            return tr("clock not yet synchronised since boot", language)
        if kind == "last_ticket":
            return tr("clock is before the last ticket ({time})", language, **found.groupdict())
        if kind == "server_time":
            return tr(
                "clock is before the server time it saw ({time})", language, **found.groupdict()
            )
        return tr("wall clock {offset} s off the server's", language, **found.groupdict())
    return reason


def _clock_fact(reading: clock.Reading, zone: ZoneInfo, language: str) -> str:
    """Whether the kiosk knows the day: an unsure clock numbers from its own series."""
    reason = _clock_reason(reading.reason, language) if reading.reason else ""
    if not reading.sure:
        return tr("UNSURE ({reason}): own series, no date on paper", language, reason=reason)
    if reading.source == "server":
        where = tr("from the server", language)
    else:
        where = tr("synchronised", language)
    note = f"; {reason}" if reason else ""
    return f"{local_time(reading.moment.isoformat(), zone, language)} ({where}{note})"


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
        #: what the menu and its PIN pad speak: the kiosk's, never the customer's
        self.language = settings.language
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
        self.app.pin.language = self.language
        self.app.pin.reset(self._locked_words(locked) if locked else "")
        self.app.screens.current = "pin"
        self.touched()
        log.info("admin PIN pad opened")

    def _locked_words(self, seconds: int) -> str:
        return tr("Locked: try again in {seconds} s", self.language, seconds=seconds)

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
            self.app.pin.reset(self._locked_words(verdict.locked_s))
        else:
            log.warning("admin PIN: wrong (%d tries left)", verdict.tries_left)
            self.app.pin.reset(
                ntr(
                    "Wrong PIN: {count} try left",
                    "Wrong PIN: {count} tries left",
                    verdict.tries_left,
                    self.language,
                )
            )
        self.touched()

    def show_menu(self, message: str = "") -> None:
        menu = self.app.menu
        menu.language = self.language
        menu.facts = "\n".join(
            f"[b]{escape_markup(label)}[/b]  {escape_markup(value)}"
            for label, value in facts(self.db, self.zone, self.language)
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
        language = self.language
        if action == "close":
            self.close()
        elif action == "test_print":
            self._in_background(
                self.app.issuer.test_print(),
                lambda state: tr(
                    "Test page printed; printer {state}",
                    language,
                    state=state_word(state, language),
                ),
            )
        elif action == "reprint":
            self._in_background(
                self.app.issuer.reprint_last(),
                lambda number: tr("Reprinted {number}", language, number=number),
            )
        elif action == "sync_now":
            devices.request_sync(self.db)
            self.show_menu(tr("Sync asked for; the daemon starts at once", language))
        elif action == "pair":
            PairView(then=self._pair, language=language).open()
        elif action == "toggle_open":
            devices.set_out_of_order(self.db, not devices.is_out_of_order(self.db))
            self.show_menu(
                tr("Out of order", language)
                if devices.is_out_of_order(self.db)
                else tr("Open again", language)
            )
        elif action == "restart":
            self._confirm(
                tr("Restart the kiosk app?", language),
                tr("Yes, restart", language),
                self.app.restart,
            )
        elif action == "reboot":
            self._confirm(
                tr("Reboot the kiosk now?", language),
                tr("Yes, reboot", language),
                lambda: self._power("reboot"),
            )
        elif action == "poweroff":
            self._confirm(
                tr("Power the kiosk off? Someone must switch it on again.", language),
                tr("Yes, power off", language),
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
        ConfirmView(question=question, yes=yes, then=then, language=self.language).open()

    def _pair(self, code: str) -> None:
        devices.request_pairing(self.db, code)
        self.show_menu(
            tr("Pairing with {code}: the sync daemon is on it", self.language, code=code)
        )

    def _power(self, which: str) -> None:
        if self._power_used:  # a second tap while the machine goes down does nothing
            return
        self._power_used = True
        reboot = which == "reboot"
        command = self.admin.reboot_command if reboot else self.admin.poweroff_command
        problem = machine.run_command(command)
        if problem:
            self._power_used = False
            log.warning("could not %s: %s", which, problem)
            self.show_menu(
                tr("Could not reboot: {problem}", self.language, problem=problem)
                if reboot
                else tr("Could not power off: {problem}", self.language, problem=problem)
            )
        else:
            self.show_menu(
                tr("Rebooting…", self.language) if reboot else tr("Powering off…", self.language)
            )

    def _in_background(self, future, done: Callable[[str], str]) -> None:
        """``done`` words the result for the menu; a failure is shown, not raised."""
        self.app.menu.message = tr("Working…", self.language)

        def finished(f) -> None:
            try:
                message = done(str(f.result()))
            except Exception as exc:  # shown to the technician, not raised
                log.warning("admin action failed: %s", exc)
                if type(exc) is LookupError:  # the issuer's "no ticket to reprint yet"
                    message = tr("No ticket to reprint yet", self.language)
                else:
                    message = tr("Failed: {error}", self.language, error=exc)
            Clock.schedule_once(lambda _dt: self.show_menu(message), 0)

        future.add_done_callback(finished)
