"""The keyboard and keypad: what each key does on each screen.

A customer who cannot use the touch screen has every choice by keys: digits
pick a button, Tab and the arrows move the focus (said aloud when speech is
on), Enter takes it, ``0`` held switches speech, ``+`` and ``*`` the modes,
PageUp/PageDown the volume, Backspace and Home climb the service tree. The
staff's keys (Ctrl+Alt+A, the PIN) go to the admin menu. Escape never quits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.modes import MODE_KEYS

if TYPE_CHECKING:
    from kiosk.app import KioskApp

KEY_TAB, KEY_ENTER, KEY_SPACE, KEY_ESCAPE = 9, 13, 32, 27
KEY_KP_ENTER = 271
KEYS_TAKE = (KEY_ENTER, KEY_KP_ENTER, KEY_SPACE)
KEYS_NEXT = {274, 275}  # down, right
KEYS_PREVIOUS = {273, 276}  # up, left
KEY_KP_1 = 257
KEY_BACKSPACE = 8
KEY_KP_0 = 256
KEY_ZERO = 48
KEY_HOME = 278
KEYS_LOUDER = {280, 267}  # PageUp, keypad /
KEYS_QUIETER = {281, 269}  # PageDown, keypad -
MODE_KEYCODES = {270: "large_text", 268: "high_contrast"}  # keypad + and *
MODE_SHIFTED = {61: "large_text", 56: "high_contrast"}  # Shift+= and Shift+8 (US layout)


class Keys:
    """Kivy's key events for the running app (bound to its window)."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app

    def down(self, _window, key: int, _scancode, codepoint, modifiers) -> bool:
        app = self.app
        if app.admin is None:
            return key == KEY_ESCAPE  # nothing to drive yet; Escape still never quits
        if app.admin.is_open:
            return self._admin_key(key, codepoint)
        if codepoint == "a" and {"ctrl", "alt"} <= set(modifiers) and not app.busy:
            app.admin.open_pin()  # the keyboard's way in
            return True
        if key == KEY_ESCAPE:
            return True  # never quits, never goes "back"
        on_ticket = app.screens.current == "ticket"
        if not (on_ticket and key in KEYS_TAKE):
            app.activity()  # any key: more time (on the ticket screen Enter is "Done")
        if is_zero(key, codepoint):
            app.speaking.zero_pressed()  # short: back or say again; held: speech on or off
            return True
        if key in KEYS_LOUDER or key in KEYS_QUIETER:
            app.speaking.change_volume(1 if key in KEYS_LOUDER else -1)
            return True
        mode = mode_key(key, codepoint, modifiers)
        if mode:
            app.toggle_mode(mode)
            return True
        if on_ticket:
            if key in KEYS_TAKE and app.ticket.done_enabled:
                app.go_home()
            return True
        return self._home_key(key, codepoint, modifiers)

    def _home_key(self, key: int, codepoint: str | None, modifiers: list[str]) -> bool:
        app, home = self.app, self.app.home
        digit = digit_of(key, codepoint)
        moves = {KEY_TAB: -1 if "shift" in modifiers else 1}
        moves.update(dict.fromkeys(KEYS_NEXT, 1) | dict.fromkeys(KEYS_PREVIOUS, -1))
        if digit:
            home.clear_focus()
            home.activate(digit - 1)
        elif key in moves:
            home.move_focus(moves[key])
            app.speaking.say_focused()
        elif key in KEYS_TAKE:
            home.activate()
        elif key in (KEY_BACKSPACE, KEY_HOME):
            if app.category is not None and not app.busy:
                app.navigate("back" if key == KEY_BACKSPACE else "home")
        else:
            return False
        return True

    def up(self, _window, key: int, _scancode=None, *_args) -> bool:
        if is_zero(key, None):
            self.app.speaking.zero_released()
            return True
        return False

    def _admin_key(self, key: int, codepoint: str | None) -> bool:
        app = self.app
        app.admin.touched()
        if key == KEY_ESCAPE:
            app.admin.close("closed by key")
        elif app.screens.current == "pin":
            if codepoint and len(codepoint) == 1 and codepoint.isdigit():
                app.pin.press(codepoint)
            elif key == KEY_BACKSPACE:
                app.pin.backspace()
            elif key in (KEY_ENTER, KEY_KP_ENTER):
                app.pin.submit()
        return True


def mode_key(key: int, codepoint: str | None, modifiers: list[str]) -> str:
    """The mode a key switches ("" for none): keypad + and *, or + and * typed."""
    if "shift" in modifiers and key in MODE_SHIFTED:
        return MODE_SHIFTED[key]
    return MODE_KEYS.get(codepoint or "") or MODE_KEYCODES.get(key, "")


def is_zero(key: int, codepoint: str | None) -> bool:
    """0 on the main row or the keypad: the speech key."""
    return codepoint == "0" or key in (KEY_ZERO, KEY_KP_0)


def digit_of(key: int, codepoint: str | None) -> int:
    """1–9 from the main row or the keypad; 0 for anything else."""
    if codepoint and codepoint in "123456789" and len(codepoint) == 1:
        return int(codepoint)
    if KEY_KP_1 <= key < KEY_KP_1 + 9:
        return key - KEY_KP_1 + 1
    return 0
