"""Offline speech shared by the queue server's display and the kiosk.

The display speaks calls ("Numero A42, palvelupiste 3"), the kiosk speaks its
screens and the issued ticket to a customer who cannot read them. Both need
the same parts, kept here so that neither imports the other: the engines
(:mod:`speech.engines`: espeak-ng from the distribution, Piper where a voice
model is installed), the WAV handling (:mod:`speech.audio`), the rules that
say a ticket number the way people say it (:mod:`speech.numbers`) and a disk
cache of recordings (:mod:`speech.cache`). What is said, and in which words,
belongs to the caller. This package imports nothing else of the project's.
"""

from __future__ import annotations

from speech.audio import SAMPLE_RATE, rms, samples_of_wav, to_output_format, wav_bytes
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
    check_language,
)
from speech.numbers import MAX_NUMBER_CHARS, clean, say_digits, spoken_number

__all__ = [
    "LANGUAGES",
    "MAX_NUMBER_CHARS",
    "SAMPLE_RATE",
    "Engine",
    "EspeakEngine",
    "PiperEngine",
    "RecordingCache",
    "SpeechError",
    "SpeechFailed",
    "SpeechInputError",
    "SpeechUnavailable",
    "check_language",
    "clean",
    "rms",
    "samples_of_wav",
    "say_digits",
    "spoken_number",
    "to_output_format",
    "wav_bytes",
]
