"""The real kiosk, answering a test's questions about its widget tree: when the
file ``$VUORO_PROBE/ask`` appears, it writes ``$VUORO_PROBE/answer.json`` with
the current screen, the modes, the time-limit band and every button on screen
(in X11 pixels: origin top-left), then removes ``ask``. For the UI tests of
large text, high contrast, time limits and the admin menu only.

When ``$VUORO_PROBE/do.json`` appears, it puts the screen it names on show
(tests.screen_stages) and removes it; the answer then also lists every label's
colours and glyph box (``texts``) for the contrast check (tests.screens). A
``staff_language`` in it is the language the admin menu and PIN pad speak from
then on (the kiosk's configured one otherwise); a ``staff_message`` is the
message line of the PIN pad or menu on show.

``$VUORO_PROBE_LOCALE``, when set, is the catalogue the kiosk reads its words
from (a copy with a translation left out: the fallback tests).

    python -m tests.kiosk_probe [vuoro-kiosk arguments]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kiosk import cli, display


def widgets(root) -> list:
    found, stack = [], [root]
    while stack:
        widget = stack.pop()
        found.append(widget)
        stack.extend(widget.children)
    return found


def describe(kiosk_app) -> dict:
    from kivy.core.window import Window
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.label import Label

    height = Window.height

    def box(widget) -> dict:
        x, y = widget.to_window(*widget.pos)
        return {
            "class": type(widget).__name__,
            "text": str(getattr(widget, "text", "") or getattr(widget, "label", "")),
            "x": x,
            "y": height - y - widget.height,
            "width": widget.width,
            "height": widget.height,
            "disabled": widget.disabled,
        }

    every = [w for child in Window.children for w in widgets(child)]
    return {
        "screen": kiosk_app.screens.current,
        "window": list(Window.size),
        "large_text": kiosk_app.theme.large_text,
        "high_contrast": kiosk_app.theme.high_contrast,
        "text_scale": kiosk_app.theme.text_scale,
        "language": kiosk_app.language,
        "warning": kiosk_app.warning.limit.name if kiosk_app.warning.limit else "",
        "buttons": [box(w) for w in every if isinstance(w, ButtonBehavior) and w.opacity > 0],
        "labels": [box(w) | {"font_size": w.font_size} for w in every if isinstance(w, Label)],
        "texts": texts(),
        "layers": layers(),
    } | progress(kiosk_app)


def progress(kiosk_app) -> dict:
    """Where the customer's ticket and time limits stand, so that a test waits for
    the moment itself (Done taking a tap, the way home started) instead of a fixed
    time: ``done_enabled``, the ticket's number, whether it failed, and each
    running limit's full length and when it ends (``limits``: ``time.monotonic()``,
    the same clock in every process of the machine)."""
    ticket = kiosk_app.ticket
    limits = (kiosk_app.idle_limit, kiosk_app.ticket_limit)
    return {
        "done_enabled": bool(ticket.done_enabled),
        "ticket_number": str(ticket.number),
        "ticket_problem": bool(ticket.problem),
        "limits": {
            limit.name: {"total_s": limit.total_s, "deadline": limit.deadline}
            for limit in limits
            if limit.running
        },
    }


def texts() -> list[dict]:
    """Every label with text on screen: where its glyphs are drawn (the texture,
    centred in the widget as Kivy draws it, in X11 pixels), its colour, size and
    weight, how opaque it really is (its parents' opacity too) and which window
    layer holds it (0 the bottom one: a later layer, such as the time-limit
    band, covers what is under it)."""
    from kivy.core.window import Window
    from kivy.uix.label import Label

    height = Window.height
    found = []
    for layer, root in enumerate(reversed(Window.children)):
        for widget in widgets(root):
            if not isinstance(widget, Label) or not str(widget.text).strip():
                continue
            opacity, parent = 1.0, widget
            while parent is not None and parent is not Window:
                opacity *= parent.opacity
                parent = parent.parent
            x, y = widget.to_window(*widget.pos)
            tw, th = widget.texture_size
            core = getattr(widget, "_label", None)  # Kivy's renderer: what the text needed
            needs = list(getattr(core, "_internal_size", (tw, th)))
            left, bottom = x + (widget.width - tw) / 2, y + (widget.height - th) / 2
            found.append(
                {
                    "text": str(widget.text),
                    "layer": layer,
                    "box": [x, height - y - widget.height, widget.width, widget.height],
                    "glyphs": [left, height - bottom - th, tw, th],
                    "color": list(widget.color),
                    "font_size": float(widget.font_size),
                    "bold": bool(widget.bold) or str(widget.text).startswith("[b]"),
                    "opacity": opacity,
                    "disabled": bool(widget.disabled),
                    "needs": needs,
                    "shortened": bool(getattr(core, "is_shortened", False)),
                }
            )
    return found


def layers() -> list[list[float]]:
    """Each window layer's box (X11 pixels), bottom first."""
    from kivy.core.window import Window

    height = Window.height
    boxes = []
    for root in reversed(Window.children):
        x, y = root.to_window(*root.pos)
        boxes.append([x, height - y - root.height, root.width, root.height])
    return boxes


def patch_build() -> None:
    """After Kivy's config is set (importing the app before would open the window)."""
    from kiosk import app

    original = app.KioskApp.build

    def build(self):
        root = original(self)
        watch(self)
        return root

    app.KioskApp.build = build


def watch(self) -> None:
    from kivy.clock import Clock

    folder = Path(os.environ["VUORO_PROBE"])

    def check(_dt: float) -> None:
        order = folder / "do.json"
        if order.exists():
            from tests import screen_stages

            wanted = json.loads(order.read_text(encoding="utf-8"))
            if wanted.get("staff_language") and self.admin is not None:
                self.admin.language = wanted["staff_language"]
            screen_stages.show(self, wanted)
            if wanted.get("staff_message"):
                shown = self.pin if self.screens.current == "pin" else self.menu
                shown.message = wanted["staff_message"]
            order.unlink()
        ask = folder / "ask"
        if ask.exists():
            answer = folder / "answer.json.new"
            answer.write_text(json.dumps(describe(self)), encoding="utf-8")
            answer.replace(folder / "answer.json")
            ask.unlink()

    Clock.schedule_interval(check, 0.05)


def configure_kivy(**kwargs) -> None:
    _configure(**kwargs)
    patch_build()


_configure = display.configure_kivy


def use_locale(folder: str | None) -> None:
    """Read the words from another copy of the catalogue (before any is loaded)."""
    if folder:
        import catalogue

        catalogue.LOCALE_DIR = Path(folder)
        catalogue.clear_cache()


if __name__ == "__main__":
    use_locale(os.environ.get("VUORO_PROBE_LOCALE"))
    display.configure_kivy = configure_kivy
    sys.exit(cli.main())
