"""The parts of the kiosk's spoken ticket sentence that are numbers, said as people say them.

The sentence itself ("Your number is {number}. {people} people before you,
wait {wait}. Go to {place}.") comes from the translation catalogue; what is
here are the two values in it that must be *said* differently from how they
are printed: the ticket number (``A042`` is said "A 42", the same rules as the
display's calls, :func:`speech.numbers.spoken_number`) and the estimated wait,
rounded the way a person would round it ("about 15 minutes", not "14.6").
"""

from __future__ import annotations

import math

from speech.engines import SpeechInputError, check_language
from speech.numbers import spoken_number

# --- the only words here: the wait's units, per language -------------------
# (singular, plural) forms with {n}; "less than a minute" on its own. These
# belong in the translation catalogue (as plural forms) once it has them.
_WAIT_WORDS: dict[str, dict[str, tuple[str, str] | str]] = {
    "en": {
        "minutes": ("about {n} minute", "about {n} minutes"),
        "hours": ("about {n} hour", "about {n} hours"),
        "under_a_minute": "less than a minute",
    },
    "fi": {
        "minutes": ("noin {n} minuutti", "noin {n} minuuttia"),
        "hours": ("noin {n} tunti", "noin {n} tuntia"),
        "under_a_minute": "alle minuutti",
    },
    "sv": {
        "minutes": ("ungefär {n} minut", "ungefär {n} minuter"),
        "hours": ("ungefär {n} timme", "ungefär {n} timmar"),
        "under_a_minute": "mindre än en minut",
    },
    "et": {
        "minutes": ("umbes {n} minut", "umbes {n} minutit"),
        "hours": ("umbes {n} tund", "umbes {n} tundi"),
        "under_a_minute": "alla minuti",
    },
}
# ---------------------------------------------------------------------------

MAX_WAIT_MINUTES = 24 * 60
"""A longer estimate is an error upstream; it is said as this many hours at most."""


def spoken_ticket_number(number: str) -> str:
    """The ticket number as the engine should read it: ``A042`` -> ``A42`` (said "A 42").

    Raises :class:`speech.engines.SpeechInputError` (a ``ValueError``) for a
    number with nothing to say or over :data:`speech.numbers.MAX_NUMBER_CHARS`.
    """
    return spoken_number(number)


def rounded_wait_minutes(minutes: float) -> tuple[str, int]:
    """The unit and the rounded count people say: ``("minutes", 15)``, ``("hours", 2)``.

    Up to 10 minutes exactly, then to the nearest 5 minutes, from an hour on
    to the nearest hour; under a minute is ``("under_a_minute", 0)``.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise SpeechInputError(f"a wait must be a number of minutes, not {minutes!r}")
    if math.isnan(minutes) or minutes < 0:
        raise SpeechInputError(f"a wait must be 0 minutes or more, not {minutes!r}")
    minutes = min(float(minutes), MAX_WAIT_MINUTES)
    if minutes < 1:
        return "under_a_minute", 0
    if minutes <= 10:
        return "minutes", max(1, _half_up(minutes))
    if minutes < 57.5:
        return "minutes", 5 * _half_up(minutes / 5)
    return "hours", max(1, _half_up(minutes / 60))


def _half_up(value: float) -> int:
    """2.5 is 3, as people round (Python's round() makes it 2)."""
    return math.floor(value + 0.5)


def spoken_wait(minutes: float, language: str) -> str:
    """ "about 15 minutes" in the language, for the estimated wait in the ticket sentence."""
    words = _WAIT_WORDS[check_language(language)]
    unit, count = rounded_wait_minutes(minutes)
    form = words[unit]
    if isinstance(form, str):
        return form
    return form[0 if count == 1 else 1].format(n=count)
