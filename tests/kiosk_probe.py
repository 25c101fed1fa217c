"""The real kiosk, answering a test's questions about its widget tree: when the
file ``$VUORO_PROBE/ask`` appears, it writes ``$VUORO_PROBE/answer.json`` with
the current screen, the modes, the time-limit band and every button on screen
(in X11 pixels: origin top-left), then removes ``ask``. For the UI tests of
large text, high contrast and time limits only.

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
    }


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

if __name__ == "__main__":
    display.configure_kivy = configure_kivy
    sys.exit(cli.main())
