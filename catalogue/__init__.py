"""Vuoro's one translation catalogue: the kiosk's screens and paper, the
server's ticket page and the waiting-room display read their words from it.

Translators work in PO files (``catalogue/locale/<language>/LC_MESSAGES/vuoro.po``,
domain ``vuoro``); message ids are the English source text. A missing
translation falls back along gettext's chain: the wanted language, then the
default language (the kiosk's configured one, the branch's), then English, and
the English message id itself as a last resort, so a customer never reads a
blank or a key.

Compiled ``.mo`` files are not committed. ``make venv``, ``make i18n`` and
``make install`` write them next to the PO files (``python -m catalogue
compile``), stamped with a digest of the PO they came from; a language whose
``.mo`` is missing or was compiled from another PO (a translator edited it, a
fresh clone) is compiled in memory from its PO with Babel instead. So the words
shown are always the PO's, and a fresh start costs one compile, not a build step.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import io
from pathlib import Path

DOMAIN = "vuoro"

#: The built-in languages, each complete in the catalogue (tests check).
LANGUAGES = ("en", "fi", "sv", "et")

#: Each language's name in itself, for language buttons and links.
ENDONYMS = {"en": "English", "fi": "Suomi", "sv": "Svenska", "et": "Eesti"}

#: The message ids are English: the end of every fallback chain.
SOURCE_LANGUAGE = "en"

#: What marks a message for extraction (Babel keyword specs); the Makefile's
#: ``make i18n`` passes the same to ``pybabel extract``. ``N_`` marks a message
#: kept in a table and translated where it is shown (:func:`N_`).
KEYWORDS = {"tr": None, "ntr": (1, 2), "ptr": ((1, "c"), 2), "N_": None}


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue without translating it (gettext_noop)."""
    return message


LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_STAMP_PREFIX = "source-"


def language_code(wanted: object) -> str | None:
    """``wanted`` as one of :data:`LANGUAGES` (``"fi-FI"`` → ``"fi"``), else None.

    Only these codes ever reach a file path: ``"../../etc"`` is no language.
    """
    if not isinstance(wanted, str):
        return None
    code = wanted.strip()[:16].replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"


def _digest(po: bytes) -> str:
    return hashlib.sha256(po).hexdigest()[:20]


def compile_po(po: bytes, language: str) -> bytes:
    """The ``.mo`` of a PO file, stamped with the PO's digest (Babel compiles it).

    Untranslated, partly translated and fuzzy entries are left out, so gettext
    falls back past them.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    catalog = read_po(io.BytesIO(po), locale=language, domain=DOMAIN)
    for message in list(catalog)[1:]:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(text.strip() for text in strings):
            # Babel would fill a blank plural form with the English id: leave it
            # out so the chain reaches the default language instead
            catalog.delete(message.id, message.context)
    catalog.project = DOMAIN
    catalog.version = _STAMP_PREFIX + _digest(po)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def is_current(mo: bytes, po: bytes) -> bool:
    """Whether ``mo`` was compiled from exactly this ``po``."""
    try:
        info = gettext.GNUTranslations(io.BytesIO(mo)).info()
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return info.get("project-id-version", "").endswith(_STAMP_PREFIX + _digest(po))


def compile_all() -> list[Path]:
    """Write every language's current ``.mo`` next to its PO (``make i18n``, install)."""
    written = []
    for language in LANGUAGES:
        po = po_path(language).read_bytes()
        target = mo_path(language)
        if target.exists() and is_current(target.read_bytes(), po):
            continue
        target.write_bytes(compile_po(po, language))
        written.append(target)
    return written


@functools.cache
def _compiled(language: str) -> bytes | None:
    """The language's compiled catalogue: its ``.mo`` when current, else its PO
    compiled now. None when the language has no PO at all."""
    try:
        po = po_path(language).read_bytes()
    except OSError:
        return None
    try:
        mo = mo_path(language).read_bytes()
    except OSError:
        mo = b""
    return mo if mo and is_current(mo, po) else compile_po(po, language)


@functools.lru_cache(maxsize=32)
def _chain(language: str | None, default: str | None) -> gettext.NullTranslations:
    first: gettext.NullTranslations | None = None
    for code in dict.fromkeys(c for c in (language, default, SOURCE_LANGUAGE) if c):
        compiled = _compiled(code)
        if compiled is None:
            continue
        # a fresh object per chain: add_fallback changes the object it is given
        link = gettext.GNUTranslations(io.BytesIO(compiled))
        if first is None:
            first = link
        else:
            first.add_fallback(link)
    return first or gettext.NullTranslations()


def translator(language: object, default: object = SOURCE_LANGUAGE) -> gettext.NullTranslations:
    """The gettext translations for ``language``, falling back to ``default``,
    then English (gettext's fallback chain). An unknown or hostile language code
    is skipped: the default language answers."""
    return _chain(language_code(language), language_code(default))


def clear_cache() -> None:
    """Forget loaded catalogues (after a PO changed under a running process: tests)."""
    _compiled.cache_clear()
    _chain.cache_clear()
