"""The PIN pad in front of the admin menu: digits by touch or keyboard, the
PIN checked off the UI thread (argon2 takes a noticeable moment on a Pi).
It speaks the kiosk's language (``language``, set by the admin menu), like the
menu behind it."""

from __future__ import annotations

from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen

from kiosk.i18n import tr
from kiosk.pinlock import MAX_DIGITS


class PinScreen(Screen):
    language = StringProperty("en")  # the kiosk's, not the customer's (pin.kv reads it)
    dots = StringProperty("")
    message = StringProperty("")

    def __init__(self, **kwargs) -> None:
        self.register_event_type("on_submit")
        self.register_event_type("on_cancel")
        super().__init__(**kwargs)
        self.entered = ""

    def on_submit(self, pin: str) -> None:
        """The app checks the PIN."""

    def on_cancel(self) -> None:
        """The app goes back home."""

    def reset(self, message: str = "") -> None:
        self.entered = ""
        self.dots = ""
        self.message = message

    def press(self, digit: str) -> None:
        if len(self.entered) < MAX_DIGITS:
            self.entered += digit
            self.dots = "● " * len(self.entered)

    def backspace(self) -> None:
        self.entered = self.entered[:-1]
        self.dots = "● " * len(self.entered)

    def submit(self) -> None:
        pin, self.entered, self.dots = self.entered, "", ""
        self.message = tr("Checking…", self.language)
        self.dispatch("on_submit", pin)
