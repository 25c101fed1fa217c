"""Colours and text sizes of the kiosk, chosen for contrast (white on blue is about 7:1).

Two palettes: the default, and high contrast (white and yellow on black). The
screens read the current one through ``app.theme`` (:mod:`kiosk.modes`), so
switching re-renders everything; the module constants below are the default
palette's, for screens only staff see. Every text/background pair the screens
draw is listed in :data:`TEXT_PAIRS` and checked for 4.5:1 in every palette.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

Rgba = tuple[float, float, float, float]

BACKGROUND = (0.93, 0.95, 0.97, 1)
BAR = (0.07, 0.21, 0.36, 1)
BUTTON = (0.09, 0.33, 0.64, 1)
BUTTON_PRESSED = (0.05, 0.20, 0.42, 1)
BUTTON_CLOSED = (0.83, 0.86, 0.89, 1)  # dark text on it, about 12:1
CLOSED_PREFIX = (0.33, 0.37, 0.42, 1)
FOCUS = (1.0, 0.69, 0.0, 1)
TEXT_DARK = (0.07, 0.11, 0.17, 1)
TEXT_LIGHT = (1, 1, 1, 1)
WARNING = (0.70, 0.11, 0.11, 1)

LARGE_TEXT_SCALE = 1.5  # large text mode: every font this much bigger


@dataclass(frozen=True)
class Palette:
    """One set of the kiosk's colours; field names say where each is used."""

    background: Rgba  # behind everything
    bar: Rgba  # the home screen's top bar; the ticket's number
    button: Rgba  # an open service, Done, the PIN pad
    button_pressed: Rgba
    button_closed: Rgba  # a service that takes no ticket now
    outline: Rgba  # drawn around buttons (invisible in the default palette)
    closed_outline: Rgba  # around a closed service
    prefix_box: Rgba  # the square behind a service's letter
    prefix_text: Rgba  # an open service's letter in it
    closed_prefix: Rgba  # a closed service's letter in it
    focus: Rgba  # the keyboard focus ring
    text_dark: Rgba  # text on the background
    closed_text: Rgba  # a closed service's name and why
    text_light: Rgba  # text on the bar and on buttons
    warning: Rgba  # printer trouble, a failed print (on the background)
    chip: Rgba  # an unselected language or mode button on its row
    chip_selected: Rgba  # a selected one
    chip_text: Rgba  # text on an unselected language button (on the bar)
    chip_selected_text: Rgba  # text on a selected one
    mode_text: Rgba  # text on an unselected mode button (on the background)
    number: Rgba  # the ticket's number (on the background)
    alert: Rgba  # the "need more time?" band
    alert_text: Rgba  # text on it


DEFAULT = Palette(
    background=BACKGROUND,
    bar=BAR,
    button=BUTTON,
    button_pressed=BUTTON_PRESSED,
    button_closed=BUTTON_CLOSED,
    outline=(0, 0, 0, 0),
    closed_outline=CLOSED_PREFIX,
    prefix_box=TEXT_LIGHT,
    prefix_text=BUTTON,
    closed_prefix=CLOSED_PREFIX,
    focus=FOCUS,
    text_dark=TEXT_DARK,
    closed_text=TEXT_DARK,
    text_light=TEXT_LIGHT,
    warning=WARNING,
    chip=(0.24, 0.35, 0.48, 1),  # white at 18 % over the bar, as before
    chip_selected=TEXT_LIGHT,
    chip_text=TEXT_LIGHT,
    chip_selected_text=BAR,
    mode_text=TEXT_DARK,
    number=BAR,
    alert=FOCUS,
    alert_text=TEXT_DARK,
)

YELLOW = (1.0, 0.92, 0.0, 1)
BLACK = (0.0, 0.0, 0.0, 1)
WHITE = (1.0, 1.0, 1.0, 1)

HIGH_CONTRAST = Palette(
    background=BLACK,
    bar=BLACK,
    button=BLACK,
    button_pressed=(0.25, 0.25, 0.25, 1),
    button_closed=BLACK,
    outline=WHITE,
    closed_outline=(0.6, 0.6, 0.6, 1),
    prefix_box=WHITE,
    prefix_text=BLACK,
    closed_prefix=(0.25, 0.25, 0.25, 1),
    focus=YELLOW,
    text_dark=YELLOW,
    closed_text=(0.8, 0.8, 0.8, 1),
    text_light=WHITE,
    warning=YELLOW,
    chip=BLACK,
    chip_selected=YELLOW,
    chip_text=WHITE,
    chip_selected_text=BLACK,
    mode_text=WHITE,
    number=WHITE,
    alert=YELLOW,
    alert_text=BLACK,
)

PALETTES = {"default": DEFAULT, "high_contrast": HIGH_CONTRAST}

#: Every (text, background) pair the customer screens draw: the .kv rules and
#: their meaning. A test checks each for 4.5:1 in every palette.
TEXT_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text_light", "bar", "branch name, clock, the PIN pad's labels"),
    ("chip_text", "chip", "an unselected language button"),
    ("chip_selected_text", "chip_selected", "the selected language, a switched-on mode"),
    ("mode_text", "background", "a switched-off mode button"),
    ("text_dark", "background", "the prompt, the ticket's texts"),
    ("warning", "background", "printer trouble, a failed print"),
    ("text_light", "button", "an open service's name and count, Done, the PIN pad"),
    ("text_light", "button_pressed", "a pressed button"),
    ("closed_text", "button_closed", "a closed service's name and why"),
    ("text_dark", "button_closed", "Done before it can be pressed"),
    ("prefix_text", "prefix_box", "an open service's letter"),
    ("closed_prefix", "prefix_box", "a closed service's letter"),
    ("number", "background", "the ticket's number"),
    ("focus", "bar", "the PIN pad's message"),
    ("alert_text", "alert", "the time-limit warning"),
)


def relative_luminance(colour: Rgba) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0–1 channels)."""

    def linear(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(v) for v in colour[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: Rgba, second: Rgba) -> float:
    """WCAG contrast ratio of two opaque colours, 1–21."""
    light, dark = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def palette_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Palette))
