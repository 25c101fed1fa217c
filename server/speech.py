"""Spoken calls for the waiting-room display: a chime, then each language's phrase.

The walk-in customer with only a paper ticket (and perhaps poor sight) learns
that it is their turn by ear, so a call is said the way a person would say it:
``A042`` at counter ``3`` is "Numero A42, palvelupiste 3" in Finnish, said as
"aa neljäkymmentäkaksi", not "aa nolla neljä kaksi".

Speech is synthesised offline by an engine behind a small protocol (like an
HTTP client's transports): :class:`EspeakEngine` runs espeak-ng from the
distribution, :class:`PiperEngine` runs Piper where a binary and a voice model
are configured. Every phrase's recording is cached on disk, keyed by the
engine, its voice and the exact text, so a number called again costs a file
read; several server workers may share the cache directory. Ticket numbers and
counter names come from the database but are treated as hostile: control
characters and symbols are dropped, lengths are capped, and the text reaches
the engine on its standard input, never on its command line.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

LANGUAGES = ("en", "fi", "sv", "et")
"""The languages a call can be spoken in (those of ``server.i18n.LANGUAGES``)."""

SAMPLE_RATE = 22050
"""Every recording is mono 16-bit PCM at this rate: espeak-ng's own, so its
phrases are concatenated as they are; another engine's are resampled."""

MAX_NUMBER_CHARS = 32
MAX_COUNTER_CHARS = 64
MAX_PHRASE_CHARS = 200

# What the call is introduced with, and the word said before a counter that is
# only digits ("3" becomes "palvelupiste 3"); a named counter ("Room 12",
# "Kassa") is said as it is written.
_WORDS: dict[str, tuple[str, str]] = {
    "en": ("Number", "counter"),
    "fi": ("Numero", "palvelupiste"),
    "sv": ("Nummer", "lucka"),
    "et": ("Number", "teeninduslett"),
}

# Runs of digits longer than this are said digit by digit, not as a huge number.
_LONGEST_SPOKEN_NUMBER = 6
# Punctuation that may stay inside a name ("B-wing", "St. John's", "1/2").
_INNER_PUNCTUATION = "-.'/"

_GAP_S = 0.4
_SILENCE_LEVEL = 100  # of 32767: below this a sample counts as silence
_AFTER_CHIME_S = 0.3


class SpeechError(Exception):
    """Base of everything this module raises."""


class SpeechUnavailable(SpeechError):
    """The engine or the language's voice is not installed or not configured."""


class SpeechFailed(SpeechError):
    """The engine ran but failed: an error exit, a timeout, no or broken audio."""


class SpeechInputError(SpeechError, ValueError):
    """A number, counter or language that cannot be spoken (empty, too long, unknown)."""


def _check_language(language: str) -> str:
    if language not in _WORDS:
        raise SpeechInputError(
            f"no spoken calls in language {language!r}; known: {', '.join(LANGUAGES)}"
        )
    return language


def _sayable(char: str) -> bool:
    """A Latin letter (the script of every voice here), a combining mark or a digit.

    A letter of another script would be spelled out by espeak-ng as "Hebrew
    letter shin, ..." for seconds on end: it is left out, digits of any
    script are kept and said as numbers.
    """
    category = unicodedata.category(char)
    if category == "Nd" or category[0] == "M":
        return True
    return category[0] == "L" and unicodedata.name(char, "").startswith("LATIN ")


def _clean(value: str, what: str, limit: int) -> str:
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
        if _sayable(char) or char in _INNER_PUNCTUATION:
            kept.append(char)
        else:
            kept.append(" ")
    text = "".join(kept)
    # punctuation stays only between two letters or digits
    text = re.sub(rf"(?<![^\W_])[{re.escape(_INNER_PUNCTUATION)}]+", " ", text)
    text = re.sub(rf"[{re.escape(_INNER_PUNCTUATION)}]+(?![^\W_])", " ", text)
    return " ".join(text.split())


def _say_digits(run: str) -> str:
    if len(run) > _LONGEST_SPOKEN_NUMBER:
        return " ".join(str(int(d)) for d in run)
    return str(int(run))


def _spoken_number(number: str) -> str:
    """``A042`` -> ``A42``, ``AK1-07`` -> ``A-K1 7``, ``0100`` -> ``100``.

    A single letter is written against its number ("A42"): espeak-ng then says
    the letter's name in every voice, where "A 42" is read in English as the
    article "a". Several letters are joined by hyphens so they are spelled out.
    """
    cleaned = _clean(number, "ticket number", MAX_NUMBER_CHARS)
    tokens = re.findall(r"\d+|[^\W\d_]+", cleaned)
    if not tokens:
        raise SpeechInputError(f"the ticket number {number!r} has no letter or digit to say")
    words: list[str] = []
    for token in tokens:
        if token[0].isdigit():
            spoken = _say_digits(token)
            if words and words[-1][-1].isalpha():
                words[-1] += spoken
                continue
            words.append(spoken)
        else:
            words.append("-".join(token.upper()))
    return " ".join(words)


def _spoken_counter(counter: str, language: str) -> str:
    cleaned = _clean(counter, "counter", MAX_COUNTER_CHARS)
    if re.fullmatch(r"\d+", cleaned):
        return f"{_WORDS[language][1]} {_say_digits(cleaned)}"
    return cleaned


def phrase(number: str, counter: str, language: str) -> str:
    """The exact text spoken for a call: ``phrase("A042", "3", "fi")`` is
    ``"Numero A42, palvelupiste 3."``.

    Raises :class:`SpeechInputError` (a ``ValueError``) for an unknown
    language, a number or counter over its length cap, or a number with
    nothing to say. A counter with nothing left to say is left out.
    """
    _check_language(language)
    said_number = _spoken_number(number)
    said_counter = _spoken_counter(counter, language)
    text = f"{_WORDS[language][0]} {said_number}"
    if said_counter:
        text += f", {said_counter}"
    return text + "."


# --- audio ----------------------------------------------------------------


def _pcm_from_wav(data: bytes) -> tuple[int, int, int, bytes]:
    """(rate, channels, sample width, PCM) of a RIFF WAV, also of a streamed one.

    espeak-ng writing to a pipe cannot seek back to fill in the sizes, so its
    header claims ~2 GB: the data chunk is taken as what is actually there.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechFailed("the engine's output is not a WAV file")
    position = 12
    fmt: tuple[int, int, int] | None = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body = data[position + 8 : position + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                break
            encoding = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
            if encoding != 1 or bits not in (8, 16) or not channels or not rate:
                raise SpeechFailed(f"unsupported WAV format: encoding {encoding}, {bits} bits")
            fmt = (rate, channels, bits // 8)
        elif chunk_id == b"data":
            if fmt is None:
                break
            width = fmt[2] * fmt[1]
            usable = len(body) - len(body) % width
            return fmt[0], fmt[1], fmt[2], body[:usable]
        position += 8 + size + (size & 1)
    raise SpeechFailed("the engine's WAV has no format or no audio data")


def _to_output_format(data: bytes) -> array.array:
    """The WAV's samples as mono signed 16-bit at :data:`SAMPLE_RATE`."""
    rate, channels, width, pcm = _pcm_from_wav(data)
    if width == 1:  # unsigned 8-bit
        samples = array.array("h", ((b - 128) << 8 for b in pcm))
    else:
        samples = array.array("h")
        samples.frombytes(pcm)
        if sys.byteorder == "big":
            samples.byteswap()
    if channels > 1:
        samples = array.array(
            "h",
            (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)),
        )
    if rate != SAMPLE_RATE:
        samples = _resample(samples, rate, SAMPLE_RATE)
    samples = _trimmed(samples)
    if not samples:
        raise SpeechFailed("the engine produced only silence")
    return samples


def _trimmed(samples: array.array) -> array.array:
    """Without the engine's leading and trailing silence (a 30 ms margin kept),
    so the pause between two languages is the one chosen here."""
    loud = [i for i in range(len(samples)) if abs(samples[i]) > _SILENCE_LEVEL]
    if not loud:
        return array.array("h")
    margin = round(0.03 * SAMPLE_RATE)
    return samples[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def _resample(samples: array.array, source: int, target: int) -> array.array:
    """Linear interpolation: plenty for speech played on a TV's speakers."""
    if not samples:
        return array.array("h")
    count = max(1, round(len(samples) * target / source))
    step = source / target
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for i in range(count):
        position = i * step
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[i] = round(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def _wav_bytes(samples: array.array) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        frames = samples
        if sys.byteorder == "big":
            frames = array.array("h", samples)
            frames.byteswap()
        out.writeframes(frames.tobytes())
    return buffer.getvalue()


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


# --- engines --------------------------------------------------------------


@runtime_checkable
class Engine(Protocol):
    """What :class:`Speech` needs of a text-to-speech engine."""

    def synthesize(self, text: str, language: str) -> bytes:
        """The text spoken in the language, as a PCM WAV file's bytes."""
        ...

    def available(self, language: str) -> bool:
        """Whether a voice for the language is installed and the engine runs."""
        ...

    def cache_key(self, language: str) -> str:
        """Names the engine and voice settings: a recording made with another
        key is never reused for this one."""
        ...


def _run(argv: list[str], text: str, timeout_s: float, name: str) -> bytes:
    """Run an engine with the text on its standard input; its stdout is the result."""
    try:
        done = subprocess.run(
            argv,
            input=(text + "\n").encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as error:
        raise SpeechUnavailable(f"{name} is not installed ({argv[0]})") from error
    except PermissionError as error:
        raise SpeechUnavailable(f"{name} cannot be run ({argv[0]}): {error}") from error
    except subprocess.TimeoutExpired as error:
        raise SpeechFailed(f"{name} took longer than {timeout_s:g} s") from error
    except OSError as error:
        raise SpeechFailed(f"{name} could not be started: {error}") from error
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise SpeechFailed(f"{name} exited with {done.returncode}: {stderr[-300:]}")
    if not done.stdout:
        raise SpeechFailed(f"{name} produced no audio: {stderr[-300:] or 'no message'}")
    return done.stdout


class EspeakEngine:
    """espeak-ng from the distribution (Debian package ``espeak-ng``).

    Runs ``espeak-ng -v VOICE --stdout`` with the text on standard input:
    no text is ever an argument, so none can be taken for an option, and SSML
    is off (no ``-m``), so markup in a counter's name is only text.
    """

    VOICES: ClassVar[Mapping[str, str]] = {"en": "en-gb", "fi": "fi", "sv": "sv", "et": "et"}

    def __init__(
        self,
        binary: str = "espeak-ng",
        *,
        voices: Mapping[str, str] | None = None,
        words_per_minute: int = 150,
        timeout_s: float = 15.0,
    ) -> None:
        self.binary = binary
        self.voices = {**self.VOICES, **(voices or {})}
        self.words_per_minute = words_per_minute
        self.timeout_s = timeout_s
        self._installed: dict[str, frozenset[str]] = {}

    def _executable(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise SpeechUnavailable(
                f"espeak-ng is not installed ({self.binary!r} not found on PATH); "
                "install the Debian package espeak-ng"
            )
        return found

    def _installed_voices(self, executable: str) -> frozenset[str]:
        if executable not in self._installed:
            try:
                done = subprocess.run(
                    [executable, "--voices"],
                    capture_output=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise SpeechUnavailable(f"espeak-ng cannot list its voices: {error}") from error
            names = set()
            for line in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
                columns = line.split()
                if len(columns) >= 2:
                    names.add(columns[1])
            self._installed[executable] = frozenset(names)
        return self._installed[executable]

    def voice(self, language: str) -> str:
        """The espeak-ng voice that speaks the language."""
        return self.voices[_check_language(language)]

    def available(self, language: str) -> bool:
        if language not in self.voices:
            return False
        try:
            return self.voices[language] in self._installed_voices(self._executable())
        except SpeechUnavailable:
            return False

    def cache_key(self, language: str) -> str:
        return f"espeak-ng|{self.voice(language)}|{self.words_per_minute}wpm"

    def synthesize(self, text: str, language: str) -> bytes:
        voice = self.voice(language)
        executable = self._executable()
        if voice not in self._installed_voices(executable):
            raise SpeechUnavailable(f"espeak-ng has no voice {voice!r} for {language!r}")
        argv = [executable, "-v", voice, "-s", str(self.words_per_minute), "-b", "1", "--stdout"]
        return _run(argv, text, self.timeout_s, "espeak-ng")


class PiperEngine:
    """Piper (a neural engine), only for the languages given a voice model.

    ``models`` maps a language to a voice's ``.onnx`` file, with its
    ``.onnx.json`` beside it (which names the sample rate). Piper reads the
    text on standard input and writes raw 16-bit mono PCM (``--output_raw``).
    A language without a configured model, a missing model file or a missing
    binary is :class:`SpeechUnavailable`.
    """

    def __init__(
        self,
        models: Mapping[str, Path],
        binary: str = "piper",
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.binary = binary
        self.models = {language: Path(path) for language, path in models.items()}
        self.timeout_s = timeout_s

    def _model(self, language: str) -> tuple[Path, int]:
        _check_language(language)
        model = self.models.get(language)
        if model is None:
            raise SpeechUnavailable(f"no Piper voice is configured for {language!r}")
        config = model.with_name(model.name + ".json")
        if not model.is_file() or not config.is_file():
            raise SpeechUnavailable(f"the Piper voice for {language!r} is missing: {model}")
        try:
            rate = int(json.loads(config.read_text("utf-8"))["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SpeechUnavailable(f"the Piper voice's {config} is unreadable: {error}") from error
        return model, rate

    def available(self, language: str) -> bool:
        try:
            self._model(language)
        except SpeechError:
            return False
        return shutil.which(self.binary) is not None

    def cache_key(self, language: str) -> str:
        model = self.models.get(_check_language(language))
        return f"piper|{model.name if model else '-'}"

    def synthesize(self, text: str, language: str) -> bytes:
        model, rate = self._model(language)
        executable = shutil.which(self.binary)
        if executable is None:
            raise SpeechUnavailable(f"Piper is not installed ({self.binary!r} not found on PATH)")
        argv = [executable, "--model", str(model), "--output_raw"]
        pcm = _run(argv, text, self.timeout_s, "piper")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
        return buffer.getvalue()


# --- announcements --------------------------------------------------------


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


class Speech:
    """Announcements for calls, each phrase synthesised once and kept on disk.

    The cache holds at most ``max_files`` recordings and ``max_bytes`` in all,
    the least recently used going first. Writes are a temporary file renamed
    into place, so workers in several processes may share ``cache_dir``; a
    file that does not read back as a complete recording is made again.
    """

    def __init__(
        self,
        cache_dir: Path,
        engine: Engine | None = None,
        *,
        max_files: int = 2000,
        max_bytes: int = 200 * 1024 * 1024,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.engine: Engine = engine if engine is not None else EspeakEngine()
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._chime: array.array | None = None

    def available(self, language: str) -> bool:
        """Whether calls can be spoken in the language on this server."""
        return language in LANGUAGES and self.engine.available(language)

    def languages_available(self) -> list[str]:
        """The languages of :data:`LANGUAGES` that can be spoken here."""
        return [language for language in LANGUAGES if self.engine.available(language)]

    def announcement(self, number: str, counter: str, languages: Sequence[str]) -> Announcement:
        """The chime, then the call said in each language in turn.

        Raises :class:`SpeechInputError` for bad input, :class:`SpeechUnavailable`
        when a language's voice is missing, :class:`SpeechFailed` when the engine fails.
        """
        ordered = list(dict.fromkeys(languages))
        if not ordered:
            raise SpeechInputError("an announcement needs at least one language")
        texts = {language: phrase(number, counter, language) for language in ordered}
        if self._chime is None:
            self._chime = chime()
        audio = array.array("h", self._chime)
        segments: list[tuple[str, float, float]] = [("chime", 0.0, len(audio) / SAMPLE_RATE)]
        audio.extend(_silence(_AFTER_CHIME_S))
        for index, (language, text) in enumerate(texts.items()):
            if index:
                audio.extend(_silence(_GAP_S))
            start = len(audio) / SAMPLE_RATE
            audio.extend(self.recording(text, language))
            segments.append((language, start, len(audio) / SAMPLE_RATE))
        return Announcement(
            wav=_wav_bytes(audio),
            texts=texts,
            duration_s=len(audio) / SAMPLE_RATE,
            segments=segments,
        )

    def cache_path(self, text: str, language: str) -> Path:
        """Where the recording of this text in this language with this engine is kept."""
        key = "\0".join((self.engine.cache_key(language), language, text))
        return self.cache_dir / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.wav"

    def recording(self, text: str, language: str) -> array.array:
        """The samples of one phrase: from the cache, or synthesised and cached."""
        _check_language(language)
        if len(text) > MAX_PHRASE_CHARS:
            raise SpeechInputError(f"a phrase is at most {MAX_PHRASE_CHARS} characters")
        path = self.cache_path(text, language)
        cached = _read_cached(path)
        if cached is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # least recently used goes first when pruning
            return cached
        samples = _to_output_format(self.engine.synthesize(text, language))
        self._store(path, samples)
        return samples

    def _store(self, path: Path, samples: array.array) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(_wav_bytes(samples))
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            return  # a full or read-only disk costs a new synthesis next time, not the call
        self.prune()

    def prune(self) -> None:
        """Drop the least recently used recordings beyond the caps, and stale temp files."""
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        try:
            listing = list(os.scandir(self.cache_dir))
        except OSError:
            return
        for entry in listing:
            try:
                status = entry.stat()
            except OSError:
                continue
            if entry.name.endswith(".tmp"):
                if now - status.st_mtime > 3600:  # left by a process killed mid-write
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            if entry.name.endswith(".wav"):
                entries.append((status.st_mtime, status.st_size, Path(entry.path)))
        entries.sort(reverse=True)
        total = 0
        for count, (_, size, path) in enumerate(entries, start=1):
            total += size
            if count > self.max_files or total > self.max_bytes:
                with contextlib.suppress(OSError):
                    path.unlink()


def _read_cached(path: Path) -> array.array | None:
    """The cached recording's samples, or None when absent, truncated or not ours."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        with wave.open(io.BytesIO(data), "rb") as recording:
            if (
                recording.getnchannels() != 1
                or recording.getsampwidth() != 2
                or recording.getframerate() != SAMPLE_RATE
            ):
                return None
            frames = recording.getnframes()
            pcm = recording.readframes(frames)
    except (wave.Error, EOFError, ValueError):
        return None
    if not frames or len(pcm) != 2 * frames:
        return None
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples
