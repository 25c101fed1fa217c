"""Colours of the kiosk, chosen for contrast (white on blue is about 7:1)."""

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
