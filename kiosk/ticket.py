"""The "take your ticket" screen: number, service, where to go and the paper's QR code."""

from __future__ import annotations

from kivy.properties import BooleanProperty, ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen

from kiosk.i18n import tr
from kiosk.qr import qr_texture


class TicketScreen(Screen):
    service_name = StringProperty("")
    location = StringProperty("")  # where to go ("Room 204, 2nd floor"); "" when not said
    number = StringProperty("")
    status = StringProperty("")
    scan_hint = StringProperty("")
    done_label = StringProperty("")
    qr = ObjectProperty(None, allownone=True)
    problem = BooleanProperty(False)
    done_enabled = BooleanProperty(False)

    def __init__(self, **kwargs) -> None:
        self.register_event_type("on_done")
        super().__init__(**kwargs)

    def on_done(self) -> None:
        """Default handler; the app binds the real one."""

    def show_pending(self, service_name: str, language: str, location: str = "") -> None:
        self.service_name = service_name
        self.location = "".join(ch for ch in location if ch.isprintable()).strip()
        self.number = ""
        self.qr = None
        self.problem = False
        self.done_enabled = False
        self.status = tr("Printing your ticket…", language)
        self.scan_hint = tr("Scan to follow your turn on your phone", language)
        self.done_label = tr("Done", language)

    def show_number(self, number: str, url: str) -> None:
        self.number = number
        self.qr = qr_texture(url)

    def show_printed(self, language: str) -> None:
        self.status = tr("Please take your ticket", language)

    def show_problem(self, message: str) -> None:
        self.problem = True
        self.status = message
