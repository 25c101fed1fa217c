"""Every screen a customer (or the staff) can see, put on show inside the real
kiosk app for ``make screenshots`` and the contrast check (tests.screens).

``STAGES`` is the one table: a screen's name and the function that brings it
up through the app's own methods (the staff's screens in the kiosk's language,
here each built-in one in turn). A new
screen is one more row. The functions run on the app's UI thread, called by
tests.kiosk_probe when the driver asks; nothing here imports Kivy at import
time, so the driver can read the table without opening a window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QR_URL = "http://127.0.0.1:8000/t/screenshot-ticket"
NUMBER = "A001"


@dataclass(frozen=True)
class Stage:
    name: str
    show: Callable[[Any, str], None]  # (the running KioskApp, language)


class FrozenLimit:
    """A time limit that always has 7 s left: the warning band, held still for a
    picture (the real limits keep counting down)."""

    name = "customer"
    total_s = 30.0
    warn_before_s = 10.0

    def remaining_s(self) -> float:
        return 7.0

    def extend(self) -> None:
        """A tap on the band: nothing to extend here."""


def reset(app: Any, language: str) -> None:
    """The home screen as the next customer finds it, in ``language``."""
    from sync import devices

    if app.warning.limit is not None:
        app._hide_warning(app.warning.limit)
    if app.admin.is_open:
        app.admin.close("screenshots")
    app.admin.language = app.settings.language
    app.ticket_limit.cancel()
    app.busy = False
    app.not_set_up = False
    app.category = None
    devices.set_out_of_order(app.db, False)
    app.screens.current = "home"
    app.language = language
    app.refresh()
    app.idle_limit.cancel()


def home(app: Any, language: str) -> None:
    reset(app, language)


def category(app: Any, language: str) -> None:
    """The first category open: its title, Back and Home, its services."""
    from sync import tickets

    reset(app, language)
    first = next(c for c in tickets.tree_level(app.db, None) if isinstance(c, tickets.Category))
    app.open_category(first)


def out_of_order(app: Any, language: str) -> None:
    from sync import devices

    reset(app, language)
    devices.set_out_of_order(app.db, True)
    app.refresh()


def not_set_up(app: Any, language: str) -> None:
    reset(app, language)
    app.not_set_up = True
    app.refresh()


def time_warning(app: Any, language: str) -> None:
    reset(app, language)
    app._show_warning(FrozenLimit())


def _ticket(app: Any, language: str) -> None:
    reset(app, language)
    service = app.services[0]
    app.busy = True
    app.ticket.show_pending(service.name(language), language, service.location(language))
    app.ticket.show_number(NUMBER, QR_URL)
    app.screens.current = "ticket"


def ticket_printing(app: Any, language: str) -> None:
    _ticket(app, language)


def ticket_printed(app: Any, language: str) -> None:
    _ticket(app, language)
    app.ticket.show_printed(language)
    app.ticket.done_enabled = True


def ticket_failed(app: Any, language: str) -> None:
    _ticket(app, language)
    app._print_failed(None, "the printer emulator failed on purpose")
    app.ticket.done_enabled = True


def pin_pad(app: Any, language: str) -> None:
    reset(app, language)
    app.admin.language = language  # as on a kiosk whose own language it is
    app.admin.open_pin()


def admin_menu(app: Any, language: str) -> None:
    reset(app, language)
    app.admin.language = language
    app.admin.show_menu()


STAGES: tuple[Stage, ...] = (
    Stage("home", home),
    Stage("category", category),
    Stage("time-warning", time_warning),
    Stage("ticket-printing", ticket_printing),
    Stage("ticket-printed", ticket_printed),
    Stage("ticket-failed", ticket_failed),
    Stage("out-of-order", out_of_order),
    Stage("not-set-up", not_set_up),
    Stage("pin", pin_pad),
    Stage("admin", admin_menu),
)
BY_NAME = {stage.name: stage for stage in STAGES}


def show(app: Any, order: dict) -> None:
    """Bring up ``order["screen"]`` in ``order["language"]``, then the modes
    (after: going home resets them for the next customer)."""
    BY_NAME[order["screen"]].show(app, order["language"])
    app.theme.large_text = bool(order.get("large_text"))
    app.theme.high_contrast = bool(order.get("high_contrast"))
    app.idle_limit.cancel()  # no real warning band in the middle of the pictures
