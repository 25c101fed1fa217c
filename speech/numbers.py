"""Numbers said the way people say them, and text made safe to give an engine.

``A042`` is said "aa neljäkymmentäkaksi" in Finnish, not "aa nolla neljä
kaksi": :func:`spoken_number` writes it ``A42`` for the engine. Ticket numbers,
counter and service names come from configs and databases and are treated as
hostile: :func:`clean` keeps only what a voice here can say.
"""

from __future__ import annotations

import re
import unicodedata

from speech.engines import SpeechInputError

MAX_NUMBER_CHARS = 32
"""The longest ticket number said; a longer one is an error, not a minute of digits."""

LONGEST_SPOKEN_NUMBER = 6
"""Runs of digits longer than this are said digit by digit, not as a huge number."""

INNER_PUNCTUATION = "-.'/"
"""Punctuation that may stay inside a name ("B-wing", "St. John's", "1/2")."""


def sayable(char: str) -> bool:
    """A Latin letter (the script of every voice here), a combining mark or a digit.

    A letter of another script would be spelled out by espeak-ng as "Hebrew
    letter shin, ..." for seconds on end: it is left out, digits of any
    script are kept and said as numbers.
    """
    category = unicodedata.category(char)
    if category == "Nd" or category[0] == "M":
        return True
    return category[0] == "L" and unicodedata.name(char, "").startswith("LATIN ")


def clean(value: str, what: str, limit: int) -> str:
    """Only Latin letters, digits and spaces (plus ``-.'/`` between two of them) survive.

    Control and format characters (NUL, newlines, bidi marks), symbols and
    emoji, markup characters and letters of other scripts are dropped, so
    nothing can reach the engine as an option, markup or phoneme input; what
    is left is at most said oddly.
    """
    if not isinstance(value, str):
        raise SpeechInputError(f"the {what} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise SpeechInputError(f"the {what} is {len(value)} characters long; at most {limit}")
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", value):
        if sayable(char) or char in INNER_PUNCTUATION:
            kept.append(char)
        else:
            kept.append(" ")
    text = "".join(kept)
    # punctuation stays only between two letters or digits
    text = re.sub(rf"(?<![^\W_])[{re.escape(INNER_PUNCTUATION)}]+", " ", text)
    text = re.sub(rf"[{re.escape(INNER_PUNCTUATION)}]+(?![^\W_])", " ", text)
    return " ".join(text.split())


def say_digits(run: str) -> str:
    """A run of digits as a number ("042" -> "42"), or digit by digit when it is long."""
    if len(run) > LONGEST_SPOKEN_NUMBER:
        return " ".join(str(int(d)) for d in run)
    return str(int(run))


def spoken_number(number: str) -> str:
    """``A042`` -> ``A42``, ``AK1-07`` -> ``A-K1 7``, ``0100`` -> ``100``.

    A single letter is written against its number ("A42"): espeak-ng then says
    the letter's name in every voice, where "A 42" is read in English as the
    article "a". Several letters are joined by hyphens so they are spelled out.
    """
    cleaned = clean(number, "ticket number", MAX_NUMBER_CHARS)
    tokens = re.findall(r"\d+|[^\W\d_]+", cleaned)
    if not tokens:
        raise SpeechInputError(f"the ticket number {number!r} has no letter or digit to say")
    words: list[str] = []
    for token in tokens:
        if token[0].isdigit():
            spoken = say_digits(token)
            if words and words[-1][-1].isalpha():
                words[-1] += spoken
                continue
            words.append(spoken)
        else:
            words.append("-".join(token.upper()))
    return " ".join(words)


# Punctuation kept in a sentence for its pauses; everything else that is not
# a letter, digit or mark becomes a space.
SENTENCE_PUNCTUATION = ".,:;!?-'()/%"


def speakable_text(value: str, limit: int) -> str:
    """A sentence made safe and short enough to give an engine; never raises.

    Like :func:`clean`, control and format characters (bidi marks included),
    symbols and emoji, markup and letters of scripts no voice here reads are
    dropped, but the sentence's punctuation stays for its pauses. A text
    longer than ``limit`` is cut at the last space before it; only the first
    ``4 * limit`` characters are looked at, so a 10 MB text costs no more than
    a short one. Anything that is not text is said as nothing (``""``).
    """
    if not isinstance(value, str):
        return ""
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", value[: 4 * limit]):
        kept.append(char if sayable(char) or char in SENTENCE_PUNCTUATION else " ")
    text = " ".join("".join(kept).split())
    # runs of punctuation (a ",,,,," or "-----" banner) are one mark
    marks = re.escape(SENTENCE_PUNCTUATION)
    text = re.sub(rf"([{marks}])[{marks} ]+", r"\1 ", text).strip()
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        text = text[: cut if cut > limit // 2 else limit].rstrip()
    return text
