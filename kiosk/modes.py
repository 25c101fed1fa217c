"""Large text and high contrast: the theme the screens bind to, the buttons that
switch it, and the "need more time?" band a time limit shows before it ends.

``app.theme`` is a :class:`Theme`; .kv rules read ``app.theme.colours.<name>``
and multiply font sizes by ``app.theme.text_scale``, so switching a mode
re-renders every screen at once. The modes last one customer: the app resets
them when it goes home after a ticket and when the kiosk sits idle.
"""

from __future__ import annotations

from kivy.core.window import Window
from kivy.event import EventDispatcher
from kivy.metrics import dp
from kivy.properties import (
    AliasProperty,
    BooleanProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout

from kiosk.theme import DEFAULT, HIGH_CONTRAST, LARGE_TEXT_SCALE, Palette
from kiosk.timelimit import TimeLimit, warn_lead

MODES = ("large_text", "high_contrast")
#: one key per mode, found on a numeric keypad and on a keyboard
MODE_KEYS = {"+": "large_text", "*": "high_contrast"}  # a layout with its own + key


class Theme(EventDispatcher):
    """The current customer's modes, as Kivy properties the .kv rules bind to."""

    large_text = BooleanProperty(False)
    high_contrast = BooleanProperty(False)

    def _scale(self) -> float:
        return LARGE_TEXT_SCALE if self.large_text else 1.0

    def _colours(self) -> Palette:
        return HIGH_CONTRAST if self.high_contrast else DEFAULT

    def _outline(self) -> float:
        return dp(2.5) if self.high_contrast else 0.0

    def _focus(self) -> float:
        return dp(10) if self.high_contrast else dp(6)

    #: every font size is multiplied by this (1.5 in large text mode)
    text_scale = AliasProperty(_scale, bind=["large_text"], cache=True)
    #: the palette (kiosk.theme.DEFAULT or HIGH_CONTRAST)
    colours = AliasProperty(_colours, bind=["high_contrast"], cache=True, rebind=True)
    #: the white line around buttons in high contrast (none by default)
    outline_width = AliasProperty(_outline, bind=["high_contrast"], cache=True)
    #: how far the focus ring reaches out of a button: thicker in high contrast
    focus_width = AliasProperty(_focus, bind=["high_contrast"], cache=True)

    @property
    def is_default(self) -> bool:
        return not (self.large_text or self.high_contrast)

    def toggle(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        setattr(self, mode, not getattr(self, mode))

    def reset(self) -> None:
        """Back to the default look, for the next customer."""
        self.large_text = False
        self.high_contrast = False


class ModeButton(ButtonBehavior, BoxLayout):
    """A mode's switch: an icon, its name, and a box ticked when on (never colour alone)."""

    mode = StringProperty("")
    label = StringProperty("")
    icon = StringProperty("")  # Kivy markup; high contrast draws its own
    key = StringProperty("")  # the keypad key that switches it, shown on a keycap
    on = BooleanProperty(False)
    focused = BooleanProperty(False)

    def on_mode(self, _button, mode: str) -> None:
        # a small and a big letter, the same in every language
        self.icon = "[size=14sp]A[/size]A" if mode == "large_text" else ""
        self.key = next((key for key, named in MODE_KEYS.items() if named == mode), "")


class TimeWarning(ButtonBehavior, BoxLayout):
    """The band across the top of the screen while a time limit is about to end:
    a countdown (text and a shrinking bar); one tap on it extends the limit."""

    title = StringProperty("")
    hint = StringProperty("")
    seconds_format = StringProperty("{seconds} s")  # in the customer's language
    seconds_left = NumericProperty(0)
    fraction_left = NumericProperty(1.0)
    limit = ObjectProperty(None, allownone=True)

    def show(self, limit: TimeLimit, title: str, hint: str, seconds_format: str) -> None:
        self.limit, self.title, self.hint = limit, title, hint
        self.seconds_format = seconds_format
        self.update()
        if self.parent is None:
            Window.add_widget(self)  # on top of the screens, first to get touches
        self._place()

    def hide(self) -> None:
        self.limit = None
        if self.parent is not None:
            self.parent.remove_widget(self)

    @property
    def shown(self) -> bool:
        return self.parent is not None

    def update(self) -> None:
        """Once every tick while shown: the seconds and the bar follow the clock."""
        if self.limit is None:
            return
        left = self.limit.remaining_s()
        self.seconds_left = int(left + 0.999)
        lead = warn_lead(self.limit.total_s, self.limit.warn_before_s) or 1.0
        self.fraction_left = max(0.0, min(1.0, left / lead))

    def _place(self) -> None:
        self.size_hint = (None, None)
        width, height = Window.size
        wanted = max(dp(96), height * 0.24) * (1.3 if self._large_text() else 1)
        # the words wrap rather than being cut: the band grows to hold them
        self.size = (width, max(wanted, self.minimum_height))
        self.pos = (0, height - self.height)

    def on_minimum_height(self, *_args) -> None:
        if self.parent is not None:
            self._place()

    @staticmethod
    def _large_text() -> bool:
        from kivy.app import App

        app = App.get_running_app()
        return bool(app and app.theme.large_text)

    def on_release(self) -> None:
        if self.limit is not None:
            self.limit.extend()
