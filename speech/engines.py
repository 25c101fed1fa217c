"""Text-to-speech engines behind one small protocol (like an HTTP client's transports).

:class:`EspeakEngine` runs espeak-ng from the distribution, :class:`PiperEngine`
runs Piper where a binary and a voice model are configured. The text always
reaches the engine on its standard input, never on its command line, so no
text can be taken for an option; SSML is off, so markup is only text.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

LANGUAGES = ("en", "fi", "sv", "et")
"""The languages the project speaks (those of the kiosk's and the server's screens)."""


class SpeechError(Exception):
    """Base of everything this package raises."""


class SpeechUnavailable(SpeechError):
    """The engine or the language's voice is not installed or not configured."""


class SpeechFailed(SpeechError):
    """The engine ran but failed: an error exit, a timeout, no or broken audio."""


class SpeechInputError(SpeechError, ValueError):
    """A text, number or language that cannot be spoken (empty, too long, unknown)."""


def check_language(language: str) -> str:
    """The language itself when it is one of :data:`LANGUAGES`; else :class:`SpeechInputError`."""
    if language not in LANGUAGES:
        raise SpeechInputError(f"no speech in language {language!r}; known: {', '.join(LANGUAGES)}")
    return language


@runtime_checkable
class Engine(Protocol):
    """What a speaker (the display's announcements, the kiosk's voice) needs of an engine."""

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


def run_engine(argv: list[str], text: str, timeout_s: float, name: str) -> bytes:
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
        return self.voices[check_language(language)]

    def available(self, language: str) -> bool:
        if language not in self.voices:
            return False
        try:
            return _base(self.voices[language]) in self._installed_voices(self._executable())
        except SpeechUnavailable:
            return False

    def cache_key(self, language: str) -> str:
        return f"espeak-ng|{self.voice(language)}|{self.words_per_minute}wpm"

    def synthesize(self, text: str, language: str) -> bytes:
        voice = self.voice(language)
        executable = self._executable()
        if _base(voice) not in self._installed_voices(executable):
            raise SpeechUnavailable(f"espeak-ng has no voice {voice!r} for {language!r}")
        argv = [executable, "-v", voice, "-s", str(self.words_per_minute), "-b", "1", "--stdout"]
        return run_engine(argv, text, self.timeout_s, "espeak-ng")


def _base(voice: str) -> str:
    """The installed voice of an espeak-ng voice name: ``en-gb+f3`` is ``en-gb`` with a variant."""
    return voice.split("+", 1)[0]


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
        check_language(language)
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
        model = self.models.get(check_language(language))
        return f"piper|{model.name if model else '-'}"

    def synthesize(self, text: str, language: str) -> bytes:
        model, rate = self._model(language)
        executable = shutil.which(self.binary)
        if executable is None:
            raise SpeechUnavailable(f"Piper is not installed ({self.binary!r} not found on PATH)")
        argv = [executable, "--model", str(model), "--output_raw"]
        pcm = run_engine(argv, text, self.timeout_s, "piper")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
        return buffer.getvalue()
