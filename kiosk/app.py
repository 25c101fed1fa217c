"""The kiosk's Kivy app: wires the screens to the ticket path.

Import this only after :func:`kiosk.cli.configure_kivy` has set Kivy's
config: the window is created when Kivy's window module is imported.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import ObjectProperty
from kivy.uix.screenmanager import NoTransition, ScreenManager

from appliance.notify import Notifier
from kiosk import narration
from kiosk.admin import AdminMenu, AdminScreen
from kiosk.config import KioskConfig
from kiosk.guard import TapGuard
from kiosk.home import HomeScreen
from kiosk.i18n import closed_reason, set_default_language, tr
from kiosk.issuing import Callbacks, TicketIssuer
from kiosk.keys import Keys
from kiosk.modes import MODES, ModeButton, Theme, TimeWarning
from kiosk.paper import ticket_url
from kiosk.pin import PinScreen
from kiosk.speaking import Speaking
from kiosk.startup import RETRY_S, Prepared, StateUnavailable, prepare
from kiosk.ticket import TicketScreen
from kiosk.timelimit import TimeLimit
from printer.backends import Backend
from sync import clock, devices, state, tickets
from sync.devices import NO_PAPER_STATES
from sync.schedule import Availability
from sync.tickets import Category, Service, Ticket

log = logging.getLogger("vuoro.kiosk")

DONE_GRACE_S = 1.0  # a second tap of a double tap must not dismiss the ticket
REFRESH_S = 5.0
PRINTER_POLL_S = 20.0  # how often an idle kiosk asks the printer how it is
COUNTER_TICKETS_S = 1.0  # how often the kiosk looks for a ticket staff gave at a counter
PRINT_FAILED_HOLD = 3  # the customer needs time to photograph the screen

WARNING_TICK_S = 0.1
CORNER = 0.12  # of the screen's height: the admin gesture's square


class KioskApp(App):
    title = "Vuoro"
    theme = ObjectProperty(None)  # kiosk.modes.Theme: what the .kv rules bind to

    def __init__(
        self,
        settings: KioskConfig,
        db_path: Path,
        backend: Backend,
        logo: bytes = b"",
        prepared: Prepared | StateUnavailable | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.db = None  # the UI thread's own connection, for reads, once the DB is ready
        self.unavailable = ""  # why the state DB cannot be used now ("" when it can)
        self.not_set_up = False
        self.issuer: TicketIssuer | None = None
        self.admin: AdminMenu | None = None
        self.services: list[Service] = []
        self._clock_offset: timedelta | None = timedelta(0)  # None: the time is not known
        self.logo = logo
        self.settings = settings
        self.db_path = db_path
        self.backend = backend
        self.language = settings.language
        set_default_language(settings.language)
        self.guard = TapGuard(settings.min_tap_interval_s, settings.max_tickets_per_minute)
        self.busy = False
        self._current: Service | None = None
        self.printer_state = "unknown"
        self.out_of_order = False
        self.notifier = Notifier()
        self.theme = Theme()
        self.register_event_type("on_timeout_warning")
        self.ticket_limit = self.time_limit("ticket", lambda: self.go_home())
        self.idle_limit = self.time_limit("customer", self._reset_customer)
        self._warning_tick = None
        self.speaking = Speaking(self)
        self.category: str | None = None  # the open level of the service tree (None: the top)
        self.level: list[Service | Category] = []  # what the open level offers
        self.level_title = ""

    # -- building ---------------------------------------------------------

    def build(self) -> ScreenManager:
        for name in ("modes.kv", "home.kv", "ticket.kv", "pin.kv", "admin.kv"):
            with resources.as_file(resources.files("kiosk") / name) as path:
                Builder.load_file(str(path))
        self.home = HomeScreen(name="home", branch_name=self.settings.branch["name"])
        self.ticket = TicketScreen(name="ticket")
        self.ticket.bind(on_done=lambda *_: self.go_home())
        screens = ScreenManager(transition=NoTransition())
        screens.add_widget(self.home)
        screens.add_widget(self.ticket)
        self.pin = PinScreen(name="pin")
        self.menu = AdminScreen(name="admin")
        screens.add_widget(self.pin)
        screens.add_widget(self.menu)
        self.screens = screens
        self.pin.bind(
            on_submit=lambda _s, pin: self.admin.check_pin(pin),
            on_cancel=lambda _s: self.admin.close("cancelled"),
        )
        self.menu.bind(on_action=lambda _s, action: self.admin.act(action))
        self._corner_hold = None
        self.speaking.start()
        self.keys = Keys(self)  # held here: Kivy binds bound methods weakly
        Window.bind(
            on_key_down=self.keys.down,
            on_key_up=self.keys.up,
            on_request_close=self._on_request_close,
            on_touch_down=self._on_touch_down,
            on_touch_up=self._on_touch_up,
        )
        Window.clearcolor = self.theme.colours.background
        self.warning = TimeWarning()
        self._build_modes()
        self._start(self.prepared)
        Clock.schedule_interval(lambda _dt: self._tick_clock(), 1.0)
        Clock.schedule_interval(lambda _dt: self.refresh(), REFRESH_S)
        Clock.schedule_interval(lambda _dt: self.check_printer(), PRINTER_POLL_S)
        Clock.schedule_interval(lambda _dt: self.print_counter_tickets(), COUNTER_TICKETS_S)
        self.check_printer()
        Clock.schedule_once(lambda _dt: Clock.schedule_once(self._announce_ready, 0.2), 0)
        return screens

    def _start(self, prepared: Prepared | StateUnavailable | None) -> None:
        """Open for customers, or say why not and try again in a few seconds."""
        if prepared is None:
            prepared = self._prepare()
        if isinstance(prepared, StateUnavailable):
            self.unavailable = str(prepared)
            self.notifier.status(f"out of order: {prepared}")
            self._show_unavailable()
            Clock.schedule_once(lambda _dt: self._start(None), RETRY_S)
            return
        if self.unavailable:
            log.warning("the state DB is usable again: open for customers")
        self.unavailable = ""
        self.settings = prepared.settings
        set_default_language(self.settings.language)
        for limit in (self.ticket_limit, self.idle_limit):
            limit.warn_before_s = self.settings.warn_before_s
        self.home.branch_name = self.settings.branch["name"]
        self.not_set_up = prepared.not_set_up
        if self.db is None:
            self.db = state.connect(self.db_path)
            self.issuer = TicketIssuer(
                self.db_path, self.settings, self.backend, self._post, self.logo
            )
            self.admin = AdminMenu(self, self.settings, self.db)
        self.issuer.config = self.settings
        self.refresh()

    def _prepare(self) -> Prepared | StateUnavailable:
        try:
            return prepare(self.db_path, self.settings)
        except StateUnavailable as exc:
            return exc

    def _show_unavailable(self) -> None:
        self.home.show_services([], self.language, self.choose)
        self.home.notice = tr(
            "Out of order: the kiosk's storage is full. Please ask the staff for a number.",
            self.language,
        )

    def _announce_ready(self, _dt: float) -> None:
        """The first frame is on screen: tell systemd, and start the watchdog pings.

        The pings come from the Kivy main loop itself, so a handler that hangs
        the UI stops them and systemd restarts the kiosk (``WatchdogSec=``).
        """
        log.info(
            "kiosk ready: %d services, window %dx%d%s",
            len(self.services),
            *Window.size,
            ", full screen" if Window.fullscreen else "",
        )
        self.notifier.ready(f"ready: {len(self.services)} services")
        interval = self.notifier.ping_interval_s()
        if interval is not None:
            self.notifier.watchdog()
            Clock.schedule_interval(lambda _dt: self.notifier.watchdog(), interval)

    def on_stop(self) -> None:
        self.notifier.stopping()
        if self.issuer is not None:
            self.issuer.shutdown()
        self.speaking.shutdown()

    # -- home -------------------------------------------------------------

    def print_counter_tickets(self) -> None:
        """Tickets staff gave at a counter, printed here (off the UI thread, in
        turn with the customers' own); a customer mid-tap is not disturbed."""
        if self.db is None or self.issuer is None or self.unavailable:
            return
        try:
            self.issuer.take_counter_tickets(self.db)
        except sqlite3.Error:
            log.exception("could not read the counter tickets to print")

    def refresh(self) -> None:
        """Re-read services and queue counts (the sync daemon may change them)."""
        if self.busy and self.screens.current != "home":
            return
        if self.db is None:
            self._show_unavailable()
            return
        if self.not_set_up and tickets.get_config(self.db, "mode") == "paired":
            log.info("paired: taking the server's services")
            self._start(None)
            return
        self.admin.run_server_commands()
        self.services = tickets.listed_services(self.db)
        self.out_of_order = devices.is_out_of_order(self.db) or self.not_set_up
        self.home.show_languages(self.settings.languages, self.language, self.set_language)
        self._label_modes()
        path = self._read_level()
        self.home.show_services(
            [] if self.out_of_order else self.level,
            self.language,
            self.choose,
            self.open_category,
            path,
            self.navigate,
        )
        if self.out_of_order:
            self.home.prompt = tr("Out of order. Please ask the staff for a number.", self.language)
        self._show_printer_notice()
        reading = clock.read(self.db)
        self._clock_offset = reading.moment - tickets.now_utc() if reading.sure else None
        self._tick_clock()

    def _read_level(self) -> list[Category]:
        """The open level of the service tree (the services alone without one);
        a category gone since it was opened takes the customer to the top."""
        if not tickets.listed_categories(self.db):
            self.category = None
            self.level, self.level_title = self.services, ""
            return []
        path = tickets.category_path(self.db, self.category) if self.category else []
        if self.category is not None and not path:
            self.category = None
        self.level = tickets.tree_level(self.db, self.category)
        if self.category is not None and not self.level:
            self.category, path = None, []
            self.level = tickets.tree_level(self.db, None)
        self.level_title = " › ".join(c.name(self.language) for c in path)
        return path

    def open_category(self, category: Category) -> None:
        """A tap (or key) on a category: its level, with its title read out."""
        if self.busy or not category.is_open:
            return
        self._show_level(category.id)

    def navigate(self, action: str) -> None:
        """Back: one level up; home: the top level."""
        if action == "home" or self.category is None:
            self._show_level(None)
            return
        path = tickets.category_path(self.db, self.category)
        self._show_level(path[-1].parent if path else None)

    def _show_level(self, category: str | None) -> None:
        log.info("service tree: level %s", category or "top")
        self.category = category
        self.home.clear_focus()
        self.refresh()
        self.customer_changed()
        self.speaking.say_choices()

    def check_printer(self) -> None:
        if not self.busy and self.issuer is not None:
            self.issuer.check_printer(self._printer_state_seen)

    def _printer_state_seen(self, state: str) -> None:
        if state != self.printer_state:
            self.notifier.status(f"printer: {state.replace('_', ' ')}")
        self.printer_state = state
        self._show_printer_notice()

    def _show_printer_notice(self) -> None:
        """Tell customers before they tap when no paper will come out."""
        if self.unavailable:
            self.home.notice = tr(
                "Out of order: the kiosk's storage is full. Please ask the staff for a number.",
                self.language,
            )
        elif self.not_set_up:
            self.home.notice = tr(
                "This kiosk is not set up yet. Please ask the staff for a number.", self.language
            )
        elif self.printer_state == "paper_out":
            self.home.notice = tr(
                "The printer is out of paper: your number will be shown on the screen",
                self.language,
            )
        elif self.printer_state in NO_PAPER_STATES:
            self.home.notice = tr(
                "The printer is not working: your number will be shown on the screen", self.language
            )
        else:
            self.home.notice = ""

    def _tick_clock(self) -> None:
        """The branch's time; none while the kiosk cannot tell it (a wrong clock
        on the wall of a branch is worse than none)."""
        if self._clock_offset is None:
            self.home.clock = ""
            return
        zone = ZoneInfo(self.settings.branch["timezone"])
        self.home.clock = (datetime.now(zone) + self._clock_offset).strftime("%H:%M")

    def set_language(self, language: str) -> None:
        """The customer's language until their ticket, or until they walk away."""
        changed = language != self.language
        self.language = language
        self.customer_changed()
        self.refresh()
        if changed and self.screens.current == "home" and not self.busy:
            self.speaking.say_choices()  # the choices again, in the language just chosen

    def choose(self, service: Service) -> None:
        """A deliberate tap (or key) on a service: start one ticket."""
        if self.busy or not service.is_open or self.out_of_order or self.db is None:
            return
        if not self.guard.allow():
            self.home.prompt = tr("One moment, please", self.language)
            Clock.schedule_once(lambda _dt: self.refresh(), self.settings.min_tap_interval_s)
            return
        self.busy = True
        self.speaking.ticket_words = ""
        self.idle_limit.cancel()  # the choices hold until this ticket is done
        self._current = service
        self.ticket.show_pending(
            service.name(self.language), self.language, service.location(self.language)
        )
        self.screens.current = "ticket"
        self.issuer.request(
            service,
            self.language,
            Callbacks(self._committed, self._printed, self._print_failed, self._unavailable),
        )

    # -- results from the worker, on the UI thread --------------------------

    def _post(self, callback, *args) -> None:
        Clock.schedule_once(lambda _dt: callback(*args), 0)

    def _committed(self, ticket: Ticket) -> None:
        self.ticket.show_number(ticket.display, ticket_url(self.settings, ticket))
        if self._current is not None:  # the issuer has it: speech cannot hold the paper up
            self.speaking.say_ticket(ticket.display, self._current)
        Clock.schedule_once(lambda _dt: setattr(self.ticket, "done_enabled", True), DONE_GRACE_S)

    def _printed(self, ticket: Ticket) -> None:
        self.ticket.show_printed(self.language)
        self._go_home_in(self.settings.return_home_s)

    def _print_failed(self, ticket: Ticket, error: str) -> None:
        self.ticket.show_problem(
            tr(
                "The printer could not print. Please take a photo of this screen or scan the code.",
                self.language,
            )
        )
        self._go_home_in(self.settings.return_home_s * PRINT_FAILED_HOLD)

    def _unavailable(self, closed: Availability | None) -> None:
        self.ticket.show_problem(
            tr("Sorry, no ticket could be issued. Please ask the staff.", self.language)
            if closed is None
            else closed_reason(closed.status, closed.opens_at, self.language)
        )
        self.refresh()
        self.ticket.done_enabled = True
        self._go_home_in(self.settings.return_home_s)

    def _go_home_in(self, seconds: float) -> None:
        self.ticket_limit.start(seconds)

    def go_home(self) -> None:
        self.ticket_limit.cancel()
        self.theme.reset()  # the next customer starts afresh
        self._leave_tree()
        self.speaking.reset()
        self.printer_state = "unknown"
        self.busy = False
        self.screens.current = "home"
        self.check_printer()
        if self.language != self.settings.language:
            self.set_language(self.settings.language)  # the next customer starts afresh
        else:
            self.refresh()

    # -- the customer's modes and time limits -------------------------------------

    def _build_modes(self) -> None:
        """The mode switches on the home screen; a switch re-renders every screen."""
        for mode in MODES:
            button = ModeButton(mode=mode)
            button.bind(on_release=lambda b: self.toggle_mode(b.mode))
            self.home.ids.modes.add_widget(button)
        self.theme.bind(
            large_text=lambda *_: self._modes_changed(),
            high_contrast=lambda *_: self._modes_changed(),
            colours=lambda _t, colours: setattr(Window, "clearcolor", colours.background),
        )
        self._label_modes()

    def _label_modes(self) -> None:
        for button in self.home.mode_buttons:
            button.label = (
                tr("Large text", self.language)
                if button.mode == "large_text"
                else tr("High contrast", self.language)
            )
            button.on = getattr(self.theme, button.mode)

    def toggle_mode(self, mode: str) -> None:
        """Large text or high contrast on or off, by tap or key, for this customer."""
        self.theme.toggle(mode)
        log.info("%s %s", mode.replace("_", " "), "on" if getattr(self.theme, mode) else "off")
        for button in self.home.mode_buttons:
            if button.mode == mode:
                self.speaking.say(narration.mode_words(button.label, button.on, self.language))

    # -- the service tree ------------------------------------------------------

    def _leave_tree(self) -> None:
        """The next customer starts at the first level (the focus starts afresh
        there; on a flat home screen it stays where it was, as it always has)."""
        if self.category is not None:
            self.category = None
            self.home.clear_focus()

    def _modes_changed(self) -> None:
        self._label_modes()
        self.customer_changed()

    def customer_changed(self) -> None:
        """A customer's own choice (language, a mode, an open category, speech)
        holds while they are here: it goes back after ``language_reset_s``
        untouched, with a warning first."""
        if (
            self.language == self.settings.language
            and self.theme.is_default
            and self.category is None
            and not self.speaking.switched
        ):
            self.idle_limit.cancel()
        elif self.screens.current == "home" and not self.busy:
            self.idle_limit.start(self.settings.language_reset_s)

    def _reset_customer(self) -> None:
        log.info("the customer's choices went back to the defaults (idle)")
        self.theme.reset()
        self.speaking.reset()
        self._leave_tree()
        if self.language != self.settings.language:
            self.set_language(self.settings.language)
        else:
            self.refresh()

    def time_limit(self, name: str, on_expire) -> TimeLimit:
        """A limit that shows the "need more time?" band before it ends."""
        return TimeLimit(
            name,
            on_expire,
            schedule=lambda callback, delay: Clock.schedule_once(lambda _dt: callback(), delay),
            now=time.monotonic,
            warn_before_s=self.settings.warn_before_s,
            on_warning=self._show_warning,
            on_quiet=self._hide_warning,
        )

    def on_timeout_warning(self, name: str, seconds_left: float) -> None:
        """A time limit is about to end: said aloud too when speech is on."""
        log.info("time limit %s: warning, %.1f s left", name, seconds_left)
        if name != "admin":
            self.speaking.say(tr("Need more time? Press any key", self.language))

    def _show_warning(self, limit: TimeLimit) -> None:
        # the admin menu's warning in the staff's language, the others in the customer's
        language = self.admin.language if limit.name == "admin" else self.language
        self.warning.show(
            limit,
            tr("Need more time? Tap here", language),
            tr("or press any key", language),
            # Translators: the seconds left before the screen times out
            tr("{seconds} s", language),
        )
        if self._warning_tick is None:
            self._warning_tick = Clock.schedule_interval(
                lambda _dt: self.warning.update(), WARNING_TICK_S
            )
        self.dispatch("on_timeout_warning", limit.name, limit.remaining_s())

    def _hide_warning(self, limit: TimeLimit) -> None:
        if self.warning.limit is not limit:
            return
        self.warning.hide()
        if self._warning_tick is not None:
            self._warning_tick.cancel()
            self._warning_tick = None
        log.info("time limit %s: warning gone", limit.name)

    def activity(self) -> None:
        """A touch or key from the customer: their running time limit starts over."""
        if self.screens.current == "home":
            self.idle_limit.extend()
        elif self.screens.current == "ticket":
            self.ticket_limit.extend()

    def restart(self) -> None:
        """From the admin menu: exit; systemd starts the kiosk again (Restart=always)."""
        log.warning("restarting at the admin's request")
        self.stop()

    # -- the hidden gesture, and keys -------------------------------------------

    def _on_touch_down(self, _window, touch) -> bool:
        """Holding the top-left corner for ``hold_s`` opens the admin PIN pad."""
        if self.admin is None:
            return False
        if self.admin.is_open:
            self.admin.touched()
            return False
        self.activity()
        if self.screens.current == "home" and _in_corner(touch.pos, Window.size):
            self._cancel_corner_hold()
            self._corner_hold = Clock.schedule_once(
                lambda _dt: self.admin.open_pin(), self.settings.admin.hold_s
            )
        return False

    def _on_touch_up(self, _window, _touch) -> bool:
        self._cancel_corner_hold()
        return False

    def _cancel_corner_hold(self) -> None:
        if self._corner_hold is not None:
            self._corner_hold.cancel()
            self._corner_hold = None

    def _on_request_close(self, *_args, **_kwargs) -> bool:
        return self.settings.kiosk_mode  # True keeps the window open


def _in_corner(pos: tuple[float, float], size: tuple[int, int]) -> bool:
    """The top-left corner: a square of 12% of the screen's height (Kivy's y is up)."""
    side = size[1] * CORNER
    return pos[0] <= side and pos[1] >= size[1] - side
