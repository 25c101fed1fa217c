"""Spoken calls for the waiting-room display: a chime, then each language's phrase.

The walk-in customer with only a paper ticket (and perhaps poor sight) learns
that it is their turn by ear, so a call is said the way a person would say it:
``A042`` at counter ``3`` is "Numero A42, palvelupiste 3" in Finnish, said as
"aa neljäkymmentäkaksi", not "aa nolla neljä kaksi".

The engines, the WAV handling, the spoken-number rules and the disk cache are
the shared package :mod:`speech` (the kiosk speaks with them too); what is
here is the display's own: the words of a call, the chime and the
announcement that joins them. Every phrase's recording is cached on disk, so a
number called again costs a file read; several server workers may share the
cache directory. Ticket numbers and counter names come from the database but
are treated as hostile: control characters and symbols are dropped, lengths
are capped, and the text reaches the engine on its standard input, never on
its command line.
"""

from __future__ import annotations

import array
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.i18n import spoken_call_words
from speech import audio, numbers
from speech.audio import SAMPLE_RATE
from speech.cache import RecordingCache
from speech.engines import (
    LANGUAGES,
    Engine,
    EspeakEngine,
    PiperEngine,
    SpeechError,
    SpeechFailed,
    SpeechInputError,
    SpeechUnavailable,
)
from speech.numbers import MAX_NUMBER_CHARS

__all__ = [
    "LANGUAGES",
    "MAX_COUNTER_CHARS",
    "MAX_NUMBER_CHARS",
    "MAX_PHRASE_CHARS",
    "SAMPLE_RATE",
    "Announcement",
    "Engine",
    "EspeakEngine",
    "PiperEngine",
    "Speech",
    "SpeechError",
    "SpeechFailed",
    "SpeechInputError",
    "SpeechUnavailable",
    "chime",
    "phrase",
]

MAX_COUNTER_CHARS = 64
MAX_PLACE_CHARS = 120  # as long as a service's or counter's location may be
MAX_PHRASE_CHARS = 400

_GAP_S = 0.4
_AFTER_CHIME_S = 0.3


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise SpeechInputError(
            f"no spoken calls in language {language!r}; known: {', '.join(LANGUAGES)}"
        )
    return language


def _spoken_counter(counter: str, language: str) -> str:
    """A counter that is only digits gets its word ("3" becomes "palvelupiste
    3"); a named one ("Room 12", "Kassa") is said as it is written."""
    cleaned = numbers.clean(counter, "counter", MAX_COUNTER_CHARS)
    if re.fullmatch(r"\d+", cleaned):
        return f"{spoken_call_words(language)[1]} {numbers.say_digits(cleaned)}"
    return cleaned


def _spoken_place(place: str) -> str:
    """Where to go, said as written: its commas kept as pauses ("Huone 204,
    2. kerros"), everything else cleaned as a counter's name is."""
    if not isinstance(place, str) or len(place) > MAX_PLACE_CHARS:
        raise SpeechInputError(f"a place to go is text of at most {MAX_PLACE_CHARS} characters")
    parts = (numbers.clean(part, "place", MAX_PLACE_CHARS) for part in place.split(","))
    return ", ".join(part for part in parts if part)


def phrase(number: str, counter: str, language: str, place: str = "") -> str:
    """The exact text spoken for a call: ``phrase("A042", "3", "fi")`` is
    ``"Numero A42, palvelupiste 3."``; with ``place="Huone 204, 2. kerros"``
    ``"Numero A42, palvelupiste 3. Huone 204, 2. kerros."``.

    Raises :class:`SpeechInputError` (a ``ValueError``) for an unknown
    language, a number, counter or place over its length cap, or a number with
    nothing to say. A counter or place with nothing left to say is left out.
    """
    _check_language(language)
    said_number = numbers.spoken_number(number)
    said_counter = _spoken_counter(counter, language)
    said_place = _spoken_place(place).rstrip(".")
    text = f"{spoken_call_words(language)[0]} {said_number}"
    if said_counter:
        text += f", {said_counter}"
    if said_place:
        text += f". {said_place}"
    return text + "."


def _silence(seconds: float) -> array.array:
    return array.array("h", bytes(2 * round(seconds * SAMPLE_RATE)))


def chime() -> array.array:
    """A soft two-tone "ding-dong" (E5 then C5) with bell-like overtones.

    Each tone rises over 15 ms (no click) and dies away exponentially, the
    last 40 ms faded to exact silence; the peak is half of full scale so the
    chime is not louder than the voice after it.
    """
    total = round(1.1 * SAMPLE_RATE)
    mix = [0.0] * total
    for start_s, frequency in ((0.0, 659.25), (0.38, 523.25)):
        start = round(start_s * SAMPLE_RATE)
        length = total - start
        attack = round(0.015 * SAMPLE_RATE)
        fade = round(0.04 * SAMPLE_RATE)
        for n in range(length):
            t = n / SAMPLE_RATE
            envelope = math.exp(-t / 0.22)
            if n < attack:
                envelope *= 0.5 - 0.5 * math.cos(math.pi * n / attack)
            if n >= length - fade:
                envelope *= (length - n) / fade
            phase = 2 * math.pi * frequency * t
            tone = math.sin(phase) + 0.3 * math.sin(2 * phase) + 0.08 * math.sin(3 * phase)
            mix[start + n] += envelope * tone
    peak = max(abs(v) for v in mix) or 1.0
    scale = 0.5 * 32767 / peak
    return array.array("h", (round(v * scale) for v in mix))


@dataclass(frozen=True)
class Announcement:
    """What the display plays for one call, and what was said in it."""

    wav: bytes
    """Mono 16-bit PCM WAV at :data:`SAMPLE_RATE`: the chime, then each phrase."""
    texts: dict[str, str]
    """The exact text synthesised, per language, in the order spoken."""
    duration_s: float
    segments: list[tuple[str, float, float]] = field(default_factory=list)
    """(``"chime"`` or a language, start s, end s) of each part of :attr:`wav`."""


class Speech(RecordingCache):
    """Announcements for calls, each phrase synthesised once and kept on disk.

    The cache (:class:`speech.cache.RecordingCache`) holds at most
    ``max_files`` recordings and ``max_bytes`` in all, the least recently used
    going first; workers in several processes may share ``cache_dir``.
    """

    def __init__(
        self,
        cache_dir: Path,
        engine: Engine | None = None,
        *,
        max_files: int = 2000,
        max_bytes: int = 200 * 1024 * 1024,
    ) -> None:
        super().__init__(
            cache_dir,
            engine,
            max_files=max_files,
            max_bytes=max_bytes,
            max_text_chars=MAX_PHRASE_CHARS,
        )
        self._chime: array.array | None = None

    def available(self, language: str) -> bool:
        """Whether calls can be spoken in the language on this server."""
        return language in LANGUAGES and self.engine.available(language)

    def languages_available(self) -> list[str]:
        """The languages of :data:`LANGUAGES` that can be spoken here."""
        return [language for language in LANGUAGES if self.engine.available(language)]

    def announcement(
        self,
        number: str,
        counter: str,
        languages: Sequence[str],
        places: Mapping[str, str] | None = None,
    ) -> Announcement:
        """The chime, then the call said in each language in turn, with where to
        go in that language when ``places`` has it.

        Raises :class:`SpeechInputError` for bad input, :class:`SpeechUnavailable`
        when a language's voice is missing, :class:`SpeechFailed` when the engine fails.
        """
        ordered = list(dict.fromkeys(languages))
        if not ordered:
            raise SpeechInputError("an announcement needs at least one language")
        places = places or {}
        texts = {
            language: phrase(number, counter, language, places.get(language, ""))
            for language in ordered
        }
        if self._chime is None:
            self._chime = chime()
        samples = array.array("h", self._chime)
        segments: list[tuple[str, float, float]] = [("chime", 0.0, len(samples) / SAMPLE_RATE)]
        samples.extend(_silence(_AFTER_CHIME_S))
        for index, (language, text) in enumerate(texts.items()):
            if index:
                samples.extend(_silence(_GAP_S))
            start = len(samples) / SAMPLE_RATE
            samples.extend(self.recording(text, language))
            segments.append((language, start, len(samples) / SAMPLE_RATE))
        return Announcement(
            wav=audio.wav_bytes(samples),
            texts=texts,
            duration_s=len(samples) / SAMPLE_RATE,
            segments=segments,
        )
