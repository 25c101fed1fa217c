"""The kiosk's own words (screen and paper), from the one translation catalogue.

Service names and ticket texts come from config; these are the fixed phrases
around them. ``tr("Done", language)`` marks a message for extraction (``make
i18n``) and looks it up in ``catalogue/locale``; a phrase missing in a language
falls back to the kiosk's default language, then English.
"""

from __future__ import annotations

from catalogue import ENDONYMS, LANGUAGES, SOURCE_LANGUAGE, language_code, translator

__all__ = ["DOTTED_TIME", "ENDONYMS", "LANGUAGES", "closed_reason", "ntr", "ptr", "tr"]

#: Languages that write 13.00 where English writes 13:00.
DOTTED_TIME = frozenset({"fi", "sv", "et"})

_default = [SOURCE_LANGUAGE]


def set_default_language(language: str) -> None:
    """The kiosk's configured language: where a phrase missing in the customer's
    language is taken from (before English)."""
    _default[0] = language_code(language) or SOURCE_LANGUAGE


def tr(message: str, language: str, **values: object) -> str:
    """``message`` (English source text) in ``language``, formatted with ``values``."""
    text = translator(language, _default[0]).gettext(message)
    return text.format(**values) if values else text


def ntr(singular: str, plural: str, count: int, language: str, **values: object) -> str:
    """The form of a counted message for ``count``; ``{count}`` is filled in."""
    text = translator(language, _default[0]).ngettext(singular, plural, count)
    return text.format(count=count, **values)


def ptr(context: str, message: str, language: str, **values: object) -> str:
    """A message whose English is shared by words translated differently."""
    text = translator(language, _default[0]).pgettext(context, message)
    return text.format(**values) if values else text


def closed_reason(status: str, opens_at: str | None, language: str) -> str:
    """ "Opens at 13:00", "No more tickets today", …: what a closed button says."""
    if status == "later":
        time = (opens_at or "").replace(":", "." if language in DOTTED_TIME else ":")
        return tr("Opens at {time}", language, time=time)
    if status == "closed_today":
        return tr("Closed today", language)
    if status in ("done_today", "full"):
        return tr("No more tickets today", language)
    # Translators: a service's button when it takes no tickets now
    return ptr("service", "Closed", language)
