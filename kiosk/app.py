"""The kiosk's Kivy app: wires the screens to the ticket path.

Import this only after :func:`kiosk.cli.configure_kivy` has set Kivy's
config: the window is created when Kivy's window module is imported.
"""

from __future__ import annotations

import logging
import os
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
from kiosk.home import HomeScreen, LanguageButton, NavButton, ServiceButton
from kiosk.i18n import closed_reason, set_default_language, tr
from kiosk.issuing import Callbacks, TicketIssuer
from kiosk.modes import MODE_KEYS, MODES, ModeButton, Theme, TimeWarning
from kiosk.paper import ticket_url
from kiosk.pin import PinScreen
from kiosk.startup import RETRY_S, Prepared, StateUnavailable, prepare
from kiosk.ticket import TicketScreen
from kiosk.timelimit import TimeLimit
from kiosk.voice import Voice, voice_from_config
from printer.backends import Backend
from sync import clock, devices, state, tickets
from sync.devices import NO_PAPER_STATES
from sync.schedule import Availability
from sync.tickets import Category, Service, Ticket

log = logging.getLogger("vuoro.kiosk")

DONE_GRACE_S = 1.0  # a second tap of a double tap must not dismiss the ticket
REFRESH_S = 5.0
PRINTER_POLL_S = 20.0  # how often an idle kiosk asks the printer how it is
PRINT_FAILED_HOLD = 3  # the customer needs time to photograph the screen

KEY_TAB, KEY_ENTER, KEY_SPACE, KEY_ESCAPE = 9, 13, 32, 27
KEY_KP_ENTER = 271
KEYS_NEXT = {274, 275}  # down, right
KEYS_PREVIOUS = {273, 276}  # up, left
KEY_KP_1 = 257
KEY_BACKSPACE = 8
KEY_KP_0 = 256
KEY_ZERO = 48
KEY_HOME = 278
KEYS_LOUDER = {280, 267}  # PageUp, keypad /
KEYS_QUIETER = {281, 269}  # PageDown, keypad -
SPEECH_HOLD_S = 1.5  # holding 0 this long switches speech on or off
SPEECH_RECORD_ENV = "VUORO_SPEECH_RECORD"  # a folder: every utterance kept as WAV, text, JSON
MODE_KEYCODES = {270: "large_text", 268: "high_contrast"}  # keypad + and *
MODE_SHIFTED = {61: "large_text", 56: "high_contrast"}  # Shift+= and Shift+8 (US layout)
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
        self.voice: Voice | None = None
        self.category: str | None = None  # the open level of the service tree (None: the top)
        self.level: list[Service | Category] = []  # what the open level offers
        self.level_title = ""
        self._zero_hold = None  # the pending "0 held long enough" event
        self._zero_down = False
        self._ticket_words = ""  # the ticket said on the ticket screen (0 says it again)

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
        self.voice = self._make_voice()
        Window.bind(
            on_key_down=self._on_key_down,
            on_key_up=self._on_key_up,
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

    def _make_voice(self) -> Voice | None:
        """The kiosk's voice: off until a held ``0`` or a plugged-in headset (or
        ``always_on``); recordings cached under the state directory."""
        record = os.environ.get(SPEECH_RECORD_ENV)
        try:
            return voice_from_config(
                self.settings.speech,
                self.db_path.parent / "speech-cache",
                record_dir=Path(record) if record else None,
                on_headset=lambda present: Clock.schedule_once(
                    lambda _dt: self._headset_changed(present), 0
                ),
            )
        except Exception:  # the kiosk issues tickets without a voice rather than not at all
            log.exception("no speech: the voice could not be set up")
            return None

    def on_stop(self) -> None:
        self.notifier.stopping()
        if self.issuer is not None:
            self.issuer.shutdown()
        if self.voice is not None:
            self.voice.shutdown()

    # -- home -------------------------------------------------------------

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
        self._customer_changed()
        self._say_choices()

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
        self._customer_changed()
        self.refresh()
        if changed and self.screens.current == "home" and not self.busy:
            self._say_choices()  # the choices again, in the language just chosen

    def choose(self, service: Service) -> None:
        """A deliberate tap (or key) on a service: start one ticket."""
        if self.busy or not service.is_open or self.out_of_order or self.db is None:
            return
        if not self.guard.allow():
            self.home.prompt = tr("One moment, please", self.language)
            Clock.schedule_once(lambda _dt: self.refresh(), self.settings.min_tap_interval_s)
            return
        self.busy = True
        self._ticket_words = ""
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
            self._ticket_words = narration.ticket_words(
                ticket.display, self._current, self.language
            )
            self.say(self._ticket_words)
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
        self._reset_voice()
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
                self.say(narration.mode_words(button.label, button.on, self.language))

    # -- speech -------------------------------------------------------------------

    def say(self, text: str, language: str | None = None) -> None:
        """Queue ``text`` for the voice (when speech is on); returns at once."""
        if self.voice is not None:
            self.voice.say(text, language or self.language)

    def _leave_tree(self) -> None:
        """The next customer starts at the first level (the focus starts afresh
        there; on a flat home screen it stays where it was, as it always has)."""
        if self.category is not None:
            self.category = None
            self.home.clear_focus()

    def _reset_voice(self) -> None:
        """Speech and volume back to their defaults for the next customer."""
        if self.voice is not None:
            self.voice.reset()
            log.info("speech reset: %s", "on" if self.voice.enabled else "off")

    def _speech_switched(self) -> bool:
        """Speech on for this customer though it is off by default."""
        return self.voice is not None and self.voice.enabled and not self.voice.default_enabled

    def toggle_speech(self) -> None:
        """Holding 0: speech on (it says so, and reads the choices) or off."""
        if self.voice is None:
            return
        self.voice.enabled = not self.voice.enabled
        log.info("speech %s", "on" if self.voice.enabled else "off")
        if self.voice.enabled:
            self._say_screen(speech_on=True)
        self._customer_changed()

    def _headset_changed(self, present: bool) -> None:
        """A headset plugged in switched speech on: tell the customer where they are."""
        log.info("speech %s (headset)", "on" if self.voice and self.voice.enabled else "off")
        if present:
            self._say_screen(speech_on=True)
        self._customer_changed()

    def _say_screen(self, speech_on: bool = False) -> None:
        if self.screens.current == "ticket" and self._ticket_words:
            self.say(self._ticket_words)
        elif self.screens.current == "home":
            self._say_choices(speech_on=speech_on)

    def _speaking(self) -> bool:
        """Whether anything said now is heard (nothing is composed otherwise)."""
        return self.voice is not None and self.voice.enabled

    def _say_choices(self, speech_on: bool = False) -> None:
        if not self._speaking():
            return
        if self.out_of_order or self.unavailable or not self.level:
            self.say(self.home.notice or self.home.prompt)
            return
        self.say(
            narration.choices(self.level, self.level_title, self.language, speech_on=speech_on)
        )

    def _say_focused(self) -> None:
        """The button the focus just moved to, said (a language in its own language)."""
        button = self.home.focused
        if not self._speaking():
            return
        if isinstance(button, ServiceButton) and button.item is not None:
            self.say(narration.item_words(button.item, self.language))
        elif isinstance(button, LanguageButton):
            self.say(*narration.language_words(button.language))
        elif isinstance(button, NavButton):
            self.say(button.text.lstrip("‹ "))
        elif isinstance(button, ModeButton):
            self.say(narration.mode_words(button.label, button.on, self.language))

    def _zero_pressed(self) -> None:
        if not self._zero_down:  # a held key repeats: the first press counts
            self._zero_down = True
            self._zero_hold = Clock.schedule_once(lambda _dt: self._zero_held(), SPEECH_HOLD_S)

    def _zero_held(self) -> None:
        self._zero_hold = None
        self.toggle_speech()

    def _zero_released(self) -> None:
        """A short 0: back one level inside a category, else say the screen again."""
        self._zero_down = False
        if self._zero_hold is None:
            return  # held: speech was switched
        self._zero_hold.cancel()
        self._zero_hold = None
        if self.admin is not None and self.admin.is_open:
            return
        if self.screens.current == "home" and self.category is not None and not self.busy:
            self.navigate("back")
        else:
            self._say_screen()

    def _change_volume(self, step: int) -> None:
        if self.voice is None:
            return
        level = self.voice.volume_up() if step > 0 else self.voice.volume_down()
        log.info("speech volume %d", level)
        self.say(tr("Volume {level}", self.language, level=level))

    def _modes_changed(self) -> None:
        self._label_modes()
        self._customer_changed()

    def _customer_changed(self) -> None:
        """A customer's own choice (language, a mode, an open category, speech)
        holds while they are here: it goes back after ``language_reset_s``
        untouched, with a warning first."""
        if (
            self.language == self.settings.language
            and self.theme.is_default
            and self.category is None
            and not self._speech_switched()
        ):
            self.idle_limit.cancel()
        elif self.screens.current == "home" and not self.busy:
            self.idle_limit.start(self.settings.language_reset_s)

    def _reset_customer(self) -> None:
        log.info("the customer's choices went back to the defaults (idle)")
        self.theme.reset()
        self._reset_voice()
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
            self.say(tr("Need more time? Press any key", self.language))

    def _show_warning(self, limit: TimeLimit) -> None:
        self.warning.show(
            limit,
            tr("Need more time? Tap here", self.language),
            tr("or press any key", self.language),
            # Translators: the seconds left before the screen times out
            tr("{seconds} s", self.language),
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

    def _activity(self) -> None:
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
        self._activity()
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

    def _on_key_down(self, _window, key: int, _scancode, codepoint, modifiers) -> bool:
        if self.admin is None:
            return key == KEY_ESCAPE  # nothing to drive yet; Escape still never quits
        if self.admin.is_open:
            return self._admin_key(key, codepoint)
        if codepoint == "a" and {"ctrl", "alt"} <= set(modifiers) and not self.busy:
            self.admin.open_pin()  # the keyboard's way in
            return True
        if key == KEY_ESCAPE:
            return True  # never quits, never goes "back"
        if not (self.screens.current == "ticket" and key in (KEY_ENTER, KEY_KP_ENTER, KEY_SPACE)):
            self._activity()  # any key: more time (on the ticket screen Enter is "Done")
        if _is_zero(key, codepoint):
            self._zero_pressed()  # short: back or say again; held: speech on or off
            return True
        if key in KEYS_LOUDER or key in KEYS_QUIETER:
            self._change_volume(1 if key in KEYS_LOUDER else -1)
            return True
        mode = _mode_key(key, codepoint, modifiers)
        if mode:
            self.toggle_mode(mode)
            return True
        if self.screens.current == "ticket":
            if key in (KEY_ENTER, KEY_KP_ENTER, KEY_SPACE) and self.ticket.done_enabled:
                self.go_home()
            return True
        digit = _digit(key, codepoint)
        if digit:
            self.home.clear_focus()
            self.home.activate(digit - 1)
        elif key == KEY_TAB:
            self.home.move_focus(-1 if "shift" in modifiers else 1)
            self._say_focused()
        elif key in KEYS_NEXT:
            self.home.move_focus(1)
            self._say_focused()
        elif key in KEYS_PREVIOUS:
            self.home.move_focus(-1)
            self._say_focused()
        elif key in (KEY_ENTER, KEY_KP_ENTER, KEY_SPACE):
            self.home.activate()
        elif key == KEY_BACKSPACE:
            if self.category is not None and not self.busy:
                self.navigate("back")
        elif key == KEY_HOME:
            if self.category is not None and not self.busy:
                self.navigate("home")
        else:
            return False
        return True

    def _on_key_up(self, _window, key: int, _scancode=None, *_args) -> bool:
        if _is_zero(key, None):
            self._zero_released()
            return True
        return False

    def _admin_key(self, key: int, codepoint: str | None) -> bool:
        self.admin.touched()
        if key == KEY_ESCAPE:
            self.admin.close("closed by key")
        elif self.screens.current == "pin":
            if codepoint and len(codepoint) == 1 and codepoint.isdigit():
                self.pin.press(codepoint)
            elif key == KEY_BACKSPACE:
                self.pin.backspace()
            elif key in (KEY_ENTER, KEY_KP_ENTER):
                self.pin.submit()
        return True


def _in_corner(pos: tuple[float, float], size: tuple[int, int]) -> bool:
    """The top-left corner: a square of 12% of the screen's height (Kivy's y is up)."""
    side = size[1] * CORNER
    return pos[0] <= side and pos[1] >= size[1] - side


def _mode_key(key: int, codepoint: str | None, modifiers: list[str]) -> str:
    """The mode a key switches ("" for none): keypad + and *, or + and * typed."""
    if "shift" in modifiers and key in MODE_SHIFTED:
        return MODE_SHIFTED[key]
    return MODE_KEYS.get(codepoint or "") or MODE_KEYCODES.get(key, "")


def _is_zero(key: int, codepoint: str | None) -> bool:
    """0 on the main row or the keypad: the speech key."""
    return codepoint == "0" or key in (KEY_ZERO, KEY_KP_0)


def _digit(key: int, codepoint: str | None) -> int:
    """1–9 from the main row or the keypad; 0 for anything else."""
    if codepoint and codepoint in "123456789" and len(codepoint) == 1:
        return int(codepoint)
    if KEY_KP_1 <= key < KEY_KP_1 + 9:
        return key - KEY_KP_1 + 1
    return 0
