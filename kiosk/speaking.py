"""What the kiosk says, and when: the screen's choices, the focused button, the
ticket, volume; speech switched on by holding ``0`` or by a headset.

One component beside the app (as the admin menu is): the app tells it what
happened, it decides what a customer who cannot see the screen needs to hear.
Nothing here waits for the voice: :class:`kiosk.voice.Voice` speaks on a
thread of its own, so the tap-to-paper path never waits for speech.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kivy.clock import Clock

from kiosk import narration
from kiosk.home import LanguageButton, NavButton, ServiceButton
from kiosk.i18n import tr
from kiosk.modes import ModeButton
from kiosk.voice import Voice, voice_from_config
from sync.tickets import Service

if TYPE_CHECKING:
    from kiosk.app import KioskApp

log = logging.getLogger("vuoro.kiosk")

SPEECH_HOLD_S = 1.5  # holding 0 this long switches speech on or off
SPEECH_RECORD_ENV = "VUORO_SPEECH_RECORD"  # a folder: every utterance kept as WAV, text, JSON


class Speaking:
    """The customer's voice on the kiosk."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app
        self.voice: Voice | None = None  # None: a kiosk without a voice
        self.ticket_words = ""  # the ticket as said on the ticket screen (0 says it again)
        self._zero_hold = None  # the pending "0 held long enough" event
        self._zero_down = False

    def start(self) -> None:
        """The voice: off until a held ``0`` or a plugged-in headset (or
        ``always_on``); recordings cached under the state directory."""
        record = os.environ.get(SPEECH_RECORD_ENV)
        try:
            self.voice = voice_from_config(
                self.app.settings.speech,
                self.app.db_path.parent / "speech-cache",
                record_dir=Path(record) if record else None,
                on_headset=lambda present: Clock.schedule_once(
                    lambda _dt: self.headset_changed(present), 0
                ),
            )
        except Exception:  # the kiosk issues tickets without a voice rather than not at all
            log.exception("no speech: the voice could not be set up")

    @property
    def on(self) -> bool:
        """Whether anything said now is heard (nothing is composed otherwise)."""
        return self.voice is not None and self.voice.enabled

    @property
    def switched(self) -> bool:
        """Speech on for this customer though it is off by default."""
        return self.on and not self.voice.default_enabled

    def say(self, text: str, language: str | None = None) -> None:
        """Queue ``text`` for the voice (when speech is on); returns at once."""
        if self.voice is not None:
            self.voice.say(text, language or self.app.language)

    def reset(self) -> None:
        """Speech and volume back to their defaults for the next customer."""
        if self.voice is not None:
            self.voice.reset()
            log.info("speech reset: %s", "on" if self.voice.enabled else "off")

    def shutdown(self) -> None:
        if self.voice is not None:
            self.voice.shutdown()

    def toggle(self) -> None:
        """Holding 0: speech on (it says so, and reads the choices) or off."""
        if self.voice is None:
            return
        self.voice.enabled = not self.voice.enabled
        log.info("speech %s", "on" if self.voice.enabled else "off")
        if self.voice.enabled:
            self.say_screen(speech_on=True)
        self.app.customer_changed()

    def headset_changed(self, present: bool) -> None:
        """A headset plugged in switched speech on: tell the customer where they are."""
        log.info("speech %s (headset)", "on" if self.on else "off")
        if present:
            self.say_screen(speech_on=True)
        self.app.customer_changed()

    def say_screen(self, speech_on: bool = False) -> None:
        if self.app.screens.current == "ticket" and self.ticket_words:
            self.say(self.ticket_words)
        elif self.app.screens.current == "home":
            self.say_choices(speech_on=speech_on)

    def say_choices(self, speech_on: bool = False) -> None:
        """The open level's choices, or why there are none."""
        if not self.on:
            return
        app = self.app
        if app.out_of_order or app.unavailable or not app.level:
            self.say(app.home.notice or app.home.prompt)
            return
        self.say(narration.choices(app.level, app.level_title, app.language, speech_on=speech_on))

    def say_focused(self) -> None:
        """The button the focus just moved to, said (a language in its own language)."""
        button = self.app.home.focused
        if not self.on:
            return
        language = self.app.language
        if isinstance(button, ServiceButton) and button.item is not None:
            self.say(narration.item_words(button.item, language))
        elif isinstance(button, LanguageButton):
            self.say(*narration.language_words(button.language))
        elif isinstance(button, NavButton):
            self.say(button.text.lstrip("‹ "))
        elif isinstance(button, ModeButton):
            self.say(narration.mode_words(button.label, button.on, language))

    def say_ticket(self, number: str, service: Service) -> None:
        """The ticket just committed: number, service, people before, wait, where to go."""
        self.ticket_words = narration.ticket_words(number, service, self.app.language)
        self.say(self.ticket_words)

    def zero_pressed(self) -> None:
        if not self._zero_down:  # a held key repeats: the first press counts
            self._zero_down = True
            self._zero_hold = Clock.schedule_once(lambda _dt: self._zero_held(), SPEECH_HOLD_S)

    def _zero_held(self) -> None:
        self._zero_hold = None
        self.toggle()

    def zero_released(self) -> None:
        """A short 0: back one level inside a category, else say the screen again."""
        self._zero_down = False
        if self._zero_hold is None:
            return  # held: speech was switched
        self._zero_hold.cancel()
        self._zero_hold = None
        app = self.app
        if app.admin is not None and app.admin.is_open:
            return
        if app.screens.current == "home" and app.category is not None and not app.busy:
            app.navigate("back")
        else:
            self.say_screen()

    def change_volume(self, step: int) -> None:
        if self.voice is None:
            return
        level = self.voice.volume_up() if step > 0 else self.voice.volume_down()
        log.info("speech volume %d", level)
        self.say(tr("Volume {level}", self.app.language, level=level))
