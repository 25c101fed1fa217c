"""The words of the public ticket page and the waiting-room display, from the
one translation catalogue (``catalogue/locale``; ``make i18n`` extracts them).

The pages' scripts refresh them without a reload, so each page gets its words
as a dictionary, looked up in the page's language with gettext's fallback
chain: the branch's default language, then English, where one is missing.
"""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from catalogue import ENDONYMS, SOURCE_LANGUAGE, translator

#: The languages pages are shown in, each by its own name.
LANGUAGES = dict(ENDONYMS)


def page_words(language: str, default: str = SOURCE_LANGUAGE) -> dict[str, str]:
    """Every phrase of the ticket page in ``language``."""
    words = translator(language, default)
    tr, ptr = words.gettext, words.pgettext
    return {
        "your_number": tr("Your number"),
        # Translators: a ticket's status on its page, before it is called
        "waiting": ptr("ticket status", "Waiting"),
        "called": tr("Please go to counter {counter}"),
        "serving": tr("Being served at counter {counter}"),
        "served": tr("Served. Thank you!"),
        "no_show": tr("Your turn passed"),
        "cancelled": tr("You left the queue"),
        "void": tr("This ticket is not valid"),
        "parked": tr("The staff are checking your ticket and will add it to the queue"),
        "position": tr("Place in queue"),
        "wait": tr("Estimated wait"),
        "minutes": tr("about {minutes} min"),
        "now": tr("any moment now"),
        "leave": tr("I'm leaving the queue"),
        "leave_confirm": tr("Leave the queue? Your number will no longer be called."),
        "yes_leave": tr("Yes, leave"),
        "stay": tr("No, stay"),
        "updated": tr("This page updates by itself."),
        "offline": tr("No connection; trying again…"),
        "feedback": tr("How was your visit?"),
        # Translators: a star rating's label, {n} is 1 to 5
        "rating": tr("{n} of 5"),
        "comment": tr("Anything to add? (optional)"),
        "send": tr("Send"),
        "thanks": tr("Thank you for your feedback!"),
        "erase": tr("Erase my comment"),
        "language": tr("Language"),
        # the ticket page's alerts (server/static/ticket.js): a switch, then the
        # banner on the page and the browser tab's title as the turn nears and comes
        "alerts": tr("Alert me with sound and vibration"),
        "alerts_note": tr("Keep this page open: it alerts you when your turn is near."),
        "near": tr("Your turn is coming soon"),
        "your_turn": tr("It's your turn!"),
        "recalled": tr("Called again"),
        # Translators: the browser tab's title; {ahead} is how many are before you
        "title_near": tr("Soon: {number} – {ahead} ahead"),
        "title_next": tr("Soon: {number} – you are next"),
        # Translators: the browser tab's title when called; keep it short
        "title_called": tr("{number} → counter {counter}"),
        "title_recalled": tr("Called again: {number} → counter {counter}"),
        # "tell me when my turn nears" by e-mail or text message (server/notify.py)
        "notify": tr("Tell me when my turn nears"),
        "notify_email": tr("E-mail"),
        "notify_sms": tr("Text message"),
        "notify_address": tr("E-mail address or phone number"),
        "notify_consent": tr(
            "I agree that the branch keeps this address to send me two messages about "
            "this ticket. It is erased when the ticket is done, or after one day at most."
        ),
        "notify_send": tr("Tell me"),
        # Translators: {address} is the holder's e-mail address or phone number
        "notify_set": tr("We will tell you at {address} when your turn nears."),
        "notify_remove": tr("Remove my address"),
        "on_its_way": tr("Your ticket is on its way"),
        "on_its_way_text": tr(
            "The kiosk has not sent it to us yet. This page refreshes by itself."
        ),
        "not_found": tr("No such ticket"),
        "not_found_text": tr(
            "There is no ticket at this address. Check the address on your ticket, "
            "or scan its QR code again. The staff can help."
        ),
    }


def display_words(languages: list[str], default: str | None = None) -> dict[str, dict[str, str]]:
    """The waiting-room display's words in each of its languages (it shows
    them in turn); a missing one is taken from ``default`` (the display's
    first language unless told), then English."""
    fallback = default or (languages[0] if languages else SOURCE_LANGUAGE)
    return {language: _display_words(language, fallback) for language in languages}


def _display_words(language: str, default: str) -> dict[str, str]:
    words = translator(language, default)
    tr, ptr = words.gettext, words.pgettext
    return {
        "now_calling": tr("Now calling"),
        # Translators: before a counter's name on the display ("Counter 3")
        "counter": ptr("display", "Counter"),
        # Translators: heading of the list of earlier calls on the display
        "earlier": ptr("display", "Called"),
        # Translators: after the number of people waiting for a service ("4 waiting")
        "waiting": ptr("display", "waiting"),
        "wait": tr("about {minutes} min"),
        "no_wait": tr("no wait"),
        "no_calls": tr("Please take a number at the kiosk"),
        "offline": tr("No connection since {time}: calls may be missing"),
        "sound_blocked": tr("Sound is blocked by the browser: tap the screen once"),
    }


def spoken_call_words(language: str) -> tuple[str, str]:
    """The words a display says around a call ("Number A42, counter 3"), in
    ``language`` (the display speaks each of its languages in turn)."""
    ptr = translator(language, language).pgettext
    return (
        # Translators: spoken before a called ticket's number ("Number A42")
        ptr("spoken call", "Number"),
        # Translators: spoken before a counter given as digits only ("counter 3")
        ptr("spoken call", "counter"),
    )


@pass_context
def _template_tr(context: Context, message: str, **values: Any) -> str:
    text = translator(context.get("lang"), context.get("default_lang")).gettext(message)
    return text.format(**values) if values else text


@pass_context
def _template_ptr(context: Context, message_context: str, message: str, **values: Any) -> str:
    text = translator(context.get("lang"), context.get("default_lang")).pgettext(
        message_context, message
    )
    return text.format(**values) if values else text


#: ``{{ tr("Time") }}`` in a template: the message in the page's ``lang`` (its
#: ``default_lang``, then English, where missing); ``make i18n`` extracts it.
TEMPLATE_GLOBALS = {"tr": _template_tr, "ptr": _template_ptr}


#: What a ticket's status says on its page; ``{counter}`` is the counter's name.
STATUS_WORDS = (
    "waiting",
    "called",
    "serving",
    "served",
    "no_show",
    "cancelled",
    "void",
    "parked",  # received, but no day's queue could take it: staff place it
)


def status_text(status: str, counter: str | None, words: dict[str, str]) -> str:
    """The status in words, never the raw key (every status has words: tests check)."""
    return words.get(status, "").replace("{counter}", counter or "")


def wait_text(seconds: int | None, words: dict[str, str]) -> str:
    """An estimated wait in words ("about 5 min"), from :func:`page_words`; ""
    when there is no estimate."""
    if seconds is None:
        return ""
    minutes = round(seconds / 60)
    return words["now"] if minutes < 1 else words["minutes"].replace("{minutes}", str(minutes))


def pick_language(wanted: str | None, ticket_language: str | None, offered: list[str]) -> str:
    for language in (wanted, ticket_language, *offered, "en"):
        if language in LANGUAGES:
            return language
    return "en"


def accepted_language(header: str | None) -> str | None:
    """The browser's most wanted language we speak (``Accept-Language``), if any.

    For a page that has no ticket to take the language from: a visitor whose
    phone is set to Finnish reads Finnish.
    """
    ranked = []
    for order, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().split("-")[0].lower()
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, order, language))
    return min(ranked)[2] if ranked else None
