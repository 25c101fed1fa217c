"""The kiosk's voice: what the screen shows, said to a customer who cannot read it.

The Kivy app owns one :class:`Voice`. :meth:`Voice.say` only queues the text
and returns: one worker thread synthesises it (offline, through
:mod:`speech`'s engines, each text cached on disk by text, language and
voice) and plays it through a player process (``aplay -D DEVICE``), so
neither the UI thread nor the tap-to-paper path ever waits for speech. Focus
moves faster than speech, so a newer utterance cancels the one being said.

The sound goes to the headset when one is plugged in (the hardware tells: a
USB audio card appearing in ``/proc/asound/cards``, or the jack's
``SW_HEADPHONE_INSERT`` switch), else to the speaker; plugging a headset in
switches speech on. After each customer :meth:`Voice.reset` brings speech and
volume back to their defaults.

Nothing here raises to the UI: a missing engine, voice or player is logged
once as a warning and speech goes quiet, the kiosk keeps issuing tickets.
Every utterance can be recorded (``record_dir``) as ``NNNN-<lang>.wav`` (what
was played), ``.txt`` (the text it was made from) and ``.json`` (voice,
device, outcome), for tests and for the log of a complaint.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from kiosk.config import SpeechConfig
from speech import audio
from speech.cache import RecordingCache
from speech.engines import (
    LANGUAGES,
    Engine,
    EspeakEngine,
    PiperEngine,
    SpeechError,
    SpeechUnavailable,
)
from speech.numbers import speakable_text

log = logging.getLogger("vuoro.kiosk.voice")

MAX_UTTERANCE_CHARS = 600
"""A longer text is cut at a word: the ticket sentence with a long service
name and a room fits, a pasted novel does not keep the customer waiting."""

VOLUME_MIN, VOLUME_MAX = 1, 10
"""Volume levels; never 0, so pressing "quieter" can never lose the voice."""

VOLUME_STEP_DB = 3.0
"""Each level is this much quieter than the one above; level 10 is as the engine made it."""

MAX_QUEUED = 16
"""Utterances waiting with ``interrupt=False`` beyond this drop the oldest."""

MAX_HISTORY = 200
"""How many utterances :attr:`Voice.spoken` remembers."""

MAX_RECORDS = 1000
"""How many utterances ``record_dir`` keeps (the oldest files go first)."""

ASOUND_CARDS_ENV = "VUORO_ASOUND_CARDS"
PLAYER = ("aplay", "-q", "-D", "{device}", "{wav}")
"""The player's command line; ``{device}`` and ``{wav}`` are whole words replaced."""

PLAYER_GRACE_S = 10.0
"""A player still running this long after its audio should have ended is stuck."""


# --- where the sound goes -------------------------------------------------


@runtime_checkable
class HeadsetSource(Protocol):
    """Tells whether a headset is plugged in, and on which ALSA device it plays."""

    def device(self) -> str | None:
        """The ALSA device of the headset now plugged in (``""`` for "the configured
        headset device"), or None when there is none."""
        ...


class NoHeadset:
    """A kiosk with a speaker only."""

    def device(self) -> str | None:
        return None


_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[([^\]]+?)\s*\]:\s+(\S+)\s+-\s+(.*)$")


class AsoundCards:
    """A USB audio card (a USB headset, or a headset adapter) listed in ``/proc/asound/cards``.

    The kernel lists every sound card there, one ``N [Id]: driver - name``
    line each; a card whose driver is one of ``drivers`` (``USB-Audio``) is a
    headset, played on as ``plughw:CARD=<Id>,DEV=0``. The file is re-read on
    each question: it is a few hundred bytes from the kernel, and a test can
    point ``path`` at a file of its own.
    """

    def __init__(
        self, path: Path = Path("/proc/asound/cards"), *, drivers: Sequence[str] = ("USB-Audio",)
    ) -> None:
        self.path = Path(path)
        self.drivers = tuple(drivers)

    def cards(self) -> list[tuple[int, str, str, str]]:
        """(index, id, driver, name) of each card; none when the file cannot be read."""
        try:
            text = self.path.read_text("utf-8", "replace")[:65536]
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            match = _CARD_LINE.match(line)
            if match:
                found.append((int(match[1]), match[2], match[3], match[4].strip()))
        return found

    def device(self) -> str | None:
        for _, card_id, driver, _ in self.cards():
            if driver in self.drivers and re.fullmatch(r"[A-Za-z0-9_-]{1,32}", card_id):
                return f"plughw:CARD={card_id},DEV=0"
        return None


_SW_HEADPHONE_INSERT = 0x02
_SW_CNT = 0x11
_EVIOCGSW = (2 << 30) | (((_SW_CNT + 7) // 8) << 16) | (ord("E") << 8) | 0x1B


class JackSwitch:
    """The 3.5 mm jack's "headphone inserted" switch, as the kernel's input layer reports it.

    Sound cards with jack detection register an input device named like
    "... Headphone Jack" whose ``SW_HEADPHONE_INSERT`` switch is on while a
    plug is in. Its state is read with the ``EVIOCGSW`` ioctl (two lines of
    stdlib; python-evdev would need a compiler on the appliance for the same
    read). A headset on the jack plays on the configured headset device, so
    :meth:`device` answers ``""``. ``sys_root`` and ``dev_root`` are the
    sysfs and ``/dev`` folders, for a test to point elsewhere.
    """

    def __init__(
        self,
        *,
        name_pattern: str = r"Head(phone|set).*Jack|Jack.*Head(phone|set)",
        sys_root: Path = Path("/sys/class/input"),
        dev_root: Path = Path("/dev/input"),
    ) -> None:
        self.name_pattern = re.compile(name_pattern, re.IGNORECASE)
        self.sys_root = Path(sys_root)
        self.dev_root = Path(dev_root)
        self._warned: set[str] = set()

    def jacks(self) -> list[Path]:
        """The event device nodes whose input device is a headphone jack."""
        found = []
        try:
            entries = sorted(self.sys_root.glob("event*"))
        except OSError:
            return []
        for entry in entries:
            try:
                name = (entry / "device" / "name").read_text("utf-8", "replace")[:256]
            except OSError:
                continue
            if self.name_pattern.search(name):
                found.append(self.dev_root / entry.name)
        return found

    def device(self) -> str | None:
        for node in self.jacks():
            try:
                with open(node, "rb", buffering=0) as handle:
                    bits = bytearray((_SW_CNT + 7) // 8)
                    fcntl.ioctl(handle, _EVIOCGSW, bits)
            except OSError as error:
                if str(node) not in self._warned:
                    self._warned.add(str(node))
                    log.warning("cannot read the headphone jack %s: %s", node, error)
                continue
            if bits[_SW_HEADPHONE_INSERT // 8] >> (_SW_HEADPHONE_INSERT % 8) & 1:
                return ""
        return None


class AnyHeadset:
    """The first of several sources that finds a headset."""

    def __init__(self, sources: Sequence[HeadsetSource]) -> None:
        self.sources = tuple(sources)

    def device(self) -> str | None:
        for source in self.sources:
            found = source.device()
            if found is not None:
                return found
        return None


# --- utterances -----------------------------------------------------------


@dataclass
class Utterance:
    """One text to say, and what became of it."""

    serial: int
    text: str
    """The text as given to the engine (made safe and cut to length)."""
    language: str
    voice: str = ""
    """The engine's voice settings (:meth:`speech.engines.Engine.cache_key`)."""
    device: str = ""
    wav_path: Path | None = None
    from_cache: bool = False
    outcome: str = "queued"
    """queued, then one of: played, interrupted, dropped, failed, unavailable."""
    error: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    playing: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set once the player runs (it may be cancelled while it does)."""
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


class Voice:
    """Speech for the kiosk: one worker thread, one utterance at a time, newest first.

    ``engine`` makes the audio (espeak-ng when None); recordings are cached
    in ``cache_dir``. ``speaker_device`` and ``headset_device`` are ALSA
    devices; ``headset`` tells when a headset is in (``headset_device`` when
    set, else the device the source found, e.g. the USB card's). ``player`` is the command
    line, with ``{device}`` and ``{wav}`` as whole words. With
    ``watch_headset_s`` a thread looks for a headset that often and switches
    speech on when one is plugged in (off when it is pulled out, unless
    ``always_on``), calling ``on_headset(present)`` from that thread.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        cache_dir: Path,
        speaker_device: str = "default",
        headset_device: str = "",
        headset: HeadsetSource | None = None,
        player: Sequence[str] = PLAYER,
        enabled: bool = False,
        always_on: bool = False,
        volume: int = 7,
        record_dir: Path | None = None,
        watch_headset_s: float | None = None,
        on_headset: Callable[[bool], None] | None = None,
    ) -> None:
        self.engine: Engine = engine if engine is not None else EspeakEngine()
        self.cache = RecordingCache(
            cache_dir, self.engine, max_text_chars=MAX_UTTERANCE_CHARS, max_files=5000
        )
        self.speaker_device = speaker_device
        self.headset_device = headset_device
        self.headset: HeadsetSource = headset if headset is not None else NoHeadset()
        self.player = tuple(player)
        self.always_on = always_on
        self.default_enabled = enabled or always_on
        self.default_volume = _bounded_volume(volume)
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.on_headset = on_headset

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[Utterance] = deque()
        self._current: Utterance | None = None
        self._process: subprocess.Popen | None = None
        self._worker: threading.Thread | None = None
        self._closing = False
        self._serial = 0
        self._enabled = self.default_enabled
        self._volume = self.default_volume
        self._warned: set[str] = set()
        self._unavailable: dict[str, str] = {}
        self._history: deque[Utterance] = deque(maxlen=MAX_HISTORY)
        self._scratch: Path | None = None
        self._headset_present = False
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if watch_headset_s is not None:
            self._headset_present = self.headset.device() is not None
            if self._headset_present:
                self._enabled = True
            self._watcher = threading.Thread(
                target=self._watch, args=(watch_headset_s,), name="voice-headset", daemon=True
            )
            self._watcher.start()

    # -- settings the customer changes ------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether :meth:`say` speaks; switching it off stops what is being said."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        if not self._enabled:
            self.stop()

    @property
    def volume(self) -> int:
        """The level, :data:`VOLUME_MIN` to :data:`VOLUME_MAX`; applies from the next utterance."""
        return self._volume

    @volume.setter
    def volume(self, value: int) -> None:
        self._volume = _bounded_volume(value)

    def volume_up(self) -> int:
        """One level louder (no further than the top); the new level."""
        self.volume = self._volume + 1
        return self._volume

    def volume_down(self) -> int:
        """One level quieter (never silent); the new level."""
        self.volume = self._volume - 1
        return self._volume

    def reset(self) -> None:
        """Back to the defaults for the next customer: nothing being said, the
        default volume, speech off unless always on or a headset is still in."""
        self.stop()
        self._volume = self.default_volume
        self._enabled = self.default_enabled or self._headset_in()

    # -- speaking ------------------------------------------------------------

    def available(self, language: str) -> bool:
        """Whether the language can be spoken here (its engine and voice installed)."""
        return language in LANGUAGES and self.engine.available(language)

    def say(self, text: str, language: str, *, interrupt: bool = True) -> Utterance | None:
        """Queue the text to be said and return at once; never raises.

        With ``interrupt`` (focus moved: the old text is stale) whatever is
        being said or waiting is cancelled. None when nothing will be said:
        speech off, the voice shut down, nothing sayable in the text, or a
        language whose engine or voice is missing (warned about once).
        """
        if not self._enabled or self._closing:
            return None
        if language not in LANGUAGES:
            self._warn_once(f"language:{language!r}", "no speech in language %r", language)
            return None
        if language in self._unavailable:
            self._warn_once(
                f"unavailable:{language}",
                "speech in %s is off: %s",
                language,
                self._unavailable[language],
            )
            return None
        said = speakable_text(text, MAX_UTTERANCE_CHARS)
        if not said:
            return None
        with self._lock:
            if self._closing:
                return None
            self._serial += 1
            utterance = Utterance(self._serial, said, language)
            if interrupt:
                self._cancel_locked()
            elif len(self._queue) >= MAX_QUEUED:
                self._finish(self._queue.popleft(), "dropped")
            self._queue.append(utterance)
            self._history.append(utterance)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="voice", daemon=True)
                self._worker.start()
            self._changed.notify_all()
        return utterance

    def stop(self) -> None:
        """Stop what is being said and forget what is waiting."""
        with self._lock:
            self._cancel_locked()
            self._changed.notify_all()

    @property
    def spoken(self) -> list[Utterance]:
        """The latest utterances (at most :data:`MAX_HISTORY`), oldest first."""
        with self._lock:
            return list(self._history)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is being said or waiting; False if ``timeout`` s passed first."""
        with self._lock:
            return self._changed.wait_for(
                lambda: not self._queue and self._current is None, timeout
            )

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop speaking and end the worker and the headset watch (the app is closing)."""
        self._watch_stop.set()
        with self._lock:
            self._closing = True
            self._cancel_locked()
            self._changed.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)
        if self._watcher is not None:
            self._watcher.join(timeout)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # -- the worker ------------------------------------------------------------

    def _cancel_locked(self) -> None:
        while self._queue:
            self._finish(self._queue.popleft(), "dropped")
        if self._current is not None:
            self._current.cancelled.set()
            if self._process is not None and self._process.poll() is None:
                _kill(self._process)

    def _finish(self, utterance: Utterance, outcome: str, error: str = "") -> None:
        """Settle the outcome: recorded first, so whoever waits on ``finished`` reads it."""
        utterance.outcome, utterance.error = outcome, error
        self._record_outcome(utterance)
        utterance.finished.set()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._queue or self._closing)
                if self._closing and not self._queue:
                    return
                utterance = self._queue.popleft()
                self._current = utterance
            try:
                self._speak(utterance)
            except Exception as error:  # the worker must outlive any one utterance
                log.exception("speaking %r failed", utterance.text[:60])
                self._finish(utterance, "failed", str(error))
            finally:
                with self._lock:
                    self._current = None
                    self._process = None
                    self._changed.notify_all()

    def _speak(self, utterance: Utterance) -> None:
        language = utterance.language
        try:
            utterance.voice = self.engine.cache_key(language)
            utterance.from_cache = self.cache.cached(utterance.text, language)
            samples = self.cache.recording(utterance.text, language)
        except SpeechUnavailable as error:
            self._unavailable[language] = str(error)
            self._warn_once(
                f"unavailable:{language}", "speech in %s is off: %s", language, str(error)
            )
            self._finish(utterance, "unavailable", str(error))
            return
        except SpeechError as error:
            log.warning("could not synthesise %r in %s: %s", utterance.text[:60], language, error)
            self._finish(utterance, "failed", str(error))
            return
        if utterance.cancelled.is_set():
            self._finish(utterance, "interrupted")
            return
        gain = 10 ** (-VOLUME_STEP_DB * (VOLUME_MAX - self._volume) / 20)
        utterance.device = self._device()
        try:
            utterance.wav_path = self._write(utterance, audio.scaled(samples, gain))
        except OSError as error:
            log.warning("could not write the audio to play: %s", error)
            self._finish(utterance, "failed", str(error))
            return
        self._play(utterance, len(samples) / audio.SAMPLE_RATE)

    def _play(self, utterance: Utterance, duration_s: float) -> None:
        words = {"{device}": utterance.device, "{wav}": str(utterance.wav_path)}
        argv = [words.get(word, word) for word in self.player]
        with self._lock:
            if utterance.cancelled.is_set():
                self._finish(utterance, "interrupted")
                return
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as error:
                self._warn_once(
                    "player", "cannot start the player %r: %s (no speech)", argv[0], error
                )
                self._finish(utterance, "failed", str(error))
                return
            self._process = process
            utterance.playing.set()
        try:
            _, stderr = process.communicate(timeout=duration_s + PLAYER_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.communicate()
            self._finish(utterance, "failed", "the player did not finish")
            return
        if utterance.cancelled.is_set():
            self._finish(utterance, "interrupted")
        elif process.returncode != 0:
            message = stderr.decode("utf-8", "replace").strip()[-300:]
            self._warn_once(
                f"player:{utterance.device}",
                "the player failed on %s (exit %s): %s",
                utterance.device,
                process.returncode,
                message,
            )
            self._finish(utterance, "failed", message or f"exit {process.returncode}")
        else:
            self._finish(utterance, "played")

    def _device(self) -> str:
        found = self.headset.device()
        if found is None:
            return self.speaker_device
        return self.headset_device or found or self.speaker_device

    def _headset_in(self) -> bool:
        try:
            return self.headset.device() is not None
        except Exception:
            log.exception("the headset source failed")
            return False

    def _write(self, utterance: Utterance, samples: array.array) -> Path:
        data = audio.wav_bytes(samples)
        if self.record_dir is None:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="vuoro-voice-"))
            path = self._scratch / "say.wav"
            path.write_bytes(data)
            return path
        self.record_dir.mkdir(parents=True, exist_ok=True)
        stem = self.record_dir / f"{utterance.serial:04d}-{utterance.language}"
        stem.with_suffix(".txt").write_text(utterance.text + "\n", "utf-8")
        path = stem.with_suffix(".wav")
        path.write_bytes(data)
        self._write_json(utterance)
        old = utterance.serial - MAX_RECORDS
        if old > 0:
            for leftover in self.record_dir.glob(f"{old:04d}-*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        return path

    def _write_json(self, utterance: Utterance) -> None:
        if self.record_dir is None:
            return
        stem = self.record_dir / f"{utterance.serial:04d}-{utterance.language}"
        facts = {
            "text": utterance.text,
            "language": utterance.language,
            "voice": utterance.voice,
            "device": utterance.device,
            "volume": self._volume,
            "from_cache": utterance.from_cache,
            "outcome": utterance.outcome,
            "error": utterance.error,
        }
        # replaced whole, so a reader never sees half of it
        temporary = stem.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(facts, ensure_ascii=False), "utf-8")
        os.replace(temporary, stem.with_suffix(".json"))

    def _record_outcome(self, utterance: Utterance) -> None:
        if self.record_dir is not None and utterance.wav_path is not None:
            with contextlib.suppress(OSError):
                self._write_json(utterance)

    def _watch(self, every_s: float) -> None:
        while not self._watch_stop.wait(every_s):
            present = self._headset_in()
            if present == self._headset_present:
                continue
            self._headset_present = present
            log.info("headset %s", "plugged in" if present else "pulled out")
            if present:
                self._enabled = True
            elif not self.always_on:
                self.enabled = False
            if self.on_headset is not None:
                try:
                    self.on_headset(present)
                except Exception:
                    log.exception("the headset callback failed")

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def _bounded_volume(value: int) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        return VOLUME_MAX
    return max(VOLUME_MIN, min(VOLUME_MAX, level))


def _kill(process: subprocess.Popen) -> None:
    """End the player and anything it started (a shell wrapper's children too)."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGTERM)


def headset_source(where: str) -> HeadsetSource:
    """The headset detection the config's ``[speech] headset`` names.

    ``VUORO_ASOUND_CARDS`` names another file to read in place of
    ``/proc/asound/cards``: where no USB headset can be plugged in (a test, a
    container), a file written in the kernel's format plugs one in.
    """
    cards = AsoundCards(Path(os.environ.get(ASOUND_CARDS_ENV) or "/proc/asound/cards"))
    sources: dict[str, list[HeadsetSource]] = {
        "usb": [cards],
        "jack": [JackSwitch()],
        "auto": [cards, JackSwitch()],
        "none": [],
    }
    chosen = sources.get(where, [])
    return AnyHeadset(chosen) if chosen else NoHeadset()


def voice_from_config(
    settings: SpeechConfig,
    cache_dir: Path,
    *,
    record_dir: Path | None = None,
    headset: HeadsetSource | None = None,
    player: Sequence[str] = PLAYER,
    watch_headset_s: float | None = 1.0,
    on_headset: Callable[[bool], None] | None = None,
) -> Voice:
    """The kiosk's :class:`Voice` as ``[speech]`` describes it."""
    engine: Engine
    if settings.engine == "piper":
        engine = PiperEngine({lang: Path(model) for lang, model in settings.voices.items()})
    else:
        engine = EspeakEngine(voices=settings.voices, words_per_minute=settings.words_per_minute)
    return Voice(
        engine,
        cache_dir=cache_dir,
        speaker_device=settings.speaker_device,
        headset_device=settings.headset_device,
        headset=headset if headset is not None else headset_source(settings.headset),
        player=player,
        enabled=settings.enabled,
        always_on=settings.always_on,
        volume=settings.volume,
        record_dir=record_dir,
        watch_headset_s=watch_headset_s,
        on_headset=on_headset,
    )
