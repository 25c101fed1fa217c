"""What the kiosk says aloud: the screen's choices, the focused button and the
issued ticket, as sentences in the customer's language (the words from the
one translation catalogue; the numbers said as people say them,
:mod:`kiosk.spoken`). Pure functions: the app hands the text to its
:class:`kiosk.voice.Voice`.
"""

from __future__ import annotations

from kiosk.home import item_detail
from kiosk.i18n import ENDONYMS, ntr, tr
from kiosk.spoken import spoken_ticket_number, spoken_wait
from speech.engines import SpeechInputError
from sync.tickets import Category, Service


def item_words(item: Service | Category, language: str) -> str:
    """ "Payments, 4 waiting" / "Money matters, more choices" / "Permits, Closed today"."""
    detail = item_detail(item, language)
    return f"{item.name(language)}, {detail}" if detail else item.name(language)


def choices(
    items: list[Service | Category], title: str, language: str, *, speech_on: bool = False
) -> str:
    """The level read out: its title, each item with its digit, and how to move."""
    parts = [tr("Speech is on", language)] if speech_on else []
    if title:
        parts.append(title)
    for digit, item in enumerate(items[:9], 1):
        parts.append(
            tr(
                "Press {digit} for {choice}",
                language,
                digit=digit,
                choice=item_words(item, language),
            )
        )
    parts.append(
        tr(
            "Use the arrow keys to move and Enter to choose. Press 0 to go back. "
            "Hold 0 to switch speech off.",
            language,
        )
        if title
        else tr(
            "Use the arrow keys to move and Enter to choose. Hold 0 to switch speech off.",
            language,
        )
    )
    return ". ".join(part.rstrip(". ") for part in parts) + "."


def mode_words(label: str, on: bool, language: str) -> str:
    """ "Large text, on" (a switch says its state in words)."""
    state = tr("on", language) if on else tr("off", language)
    return f"{label}, {state}"


def language_words(language: str) -> tuple[str, str]:
    """A language button is said in its own language: (text, language)."""
    return ENDONYMS.get(language, language), language


def ticket_words(number: str, service: Service, language: str) -> str:
    """The issued ticket: number, service, people before you, the wait, where to go."""
    try:
        said = spoken_ticket_number(number)
    except SpeechInputError:
        said = ""
    parts = [tr("Your number is {number}", language, number=said)] if said else []
    parts.append(service.name(language))
    if service.waiting is not None:
        parts.append(
            ntr(
                "{count} waiting before you",
                "{count} waiting before you",
                service.waiting,
                language,
            )
            if service.waiting
            else tr("no wait", language)
        )
        if service.waiting and service.estimated_wait_s is not None:
            try:
                wait = spoken_wait(service.estimated_wait_s / 60, language)
            except SpeechInputError:
                wait = ""  # a broken estimate is left unsaid
            if wait:
                parts.append(f"{tr('Estimated wait', language)}: {wait}")
    location = service.location(language)
    if location:
        parts.append(tr("Go to {place}", language, place=location))
    parts.append(tr("Please take your ticket", language))
    return ". ".join(part.rstrip(". ") for part in parts) + "."
