"""The kiosk's voice with the real espeak-ng and the real aplay on ALSA's null device.

No Kivy here: the component the app owns, driven as the app will drive it.
Ordering is asserted through events (the engine held at a gate, the player
running), never by timing. ALSA's ``null`` and ``plug:null`` are two real
devices that need no sound card: the speaker and the headset of these tests.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import textwrap
import threading
import unicodedata
import wave
from pathlib import Path

import pytest

from kiosk import config, spoken
from kiosk.voice import (
    MAX_UTTERANCE_CHARS,
    VOLUME_MAX,
    VOLUME_MIN,
    AnyHeadset,
    AsoundCards,
    JackSwitch,
    NoHeadset,
    Voice,
    headset_source,
    voice_from_config,
)
from speech.audio import SAMPLE_RATE, rms, samples_of_wav
from speech.engines import LANGUAGES, EspeakEngine, SpeechInputError
from tests.conftest import TWO_SERVICES

WAIT_S = 60  # a bound for a wait that ends by itself far sooner; never a pass/fail threshold
SPEAKER, HEADSET = "null", "plug:null"
AUDIBLE = 300  # RMS of 16-bit samples: espeak-ng at the default volume is ~1000, silence 0

CARDS_SPEAKER_ONLY = """\
 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
 1 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
"""
CARDS_WITH_USB_HEADSET = (
    CARDS_SPEAKER_ONLY
    + """\
 2 [Headset        ]: USB-Audio - Jabra EVOLVE 20 MS
                      GN Netcom A/S Jabra EVOLVE 20 MS at usb-0000:01:00.0-1.3, full speed
"""
)


@pytest.fixture(autouse=True, scope="module")
def tools_installed() -> None:
    """`make test` installs both: without them these tests fail, saying so."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("aplay", "alsa-utils")):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is needed: run `make test` (tools/sysdeps.sh test installs {package})"
            )


class GatedEspeak(EspeakEngine):
    """The real engine, held at a gate the test opens, counting what it is asked."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.calls: list[tuple[str, str]] = []

    def synthesize(self, text: str, language: str) -> bytes:
        self.calls.append((text, language))
        self.started.set()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        return super().synthesize(text, language)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One recording cache for the module: a text said in one test costs nothing in the next."""
    return tmp_path_factory.mktemp("voice-cache")


@pytest.fixture
def make_voice(tmp_path, cache_dir):
    """Voices on the null devices, recording into tmp_path/said; all shut down after."""
    made: list[Voice] = []

    def make(engine=None, **options) -> Voice:
        options.setdefault("cache_dir", cache_dir)
        options.setdefault("speaker_device", SPEAKER)
        options.setdefault("record_dir", tmp_path / "said")
        options.setdefault("enabled", True)
        voice = Voice(engine if engine is not None else GatedEspeak(), **options)
        made.append(voice)
        return voice

    yield make
    for voice in made:
        voice.shutdown()


def finished(utterance) -> str:
    assert utterance is not None
    assert utterance.finished.wait(WAIT_S), f"{utterance.text!r} never finished"
    return utterance.outcome


def recorded(utterance) -> tuple[str, dict, bytes]:
    """The text file, the facts and the WAV recorded for an utterance."""
    stem = utterance.wav_path.with_suffix("")
    assert stem.name == f"{utterance.serial:04d}-{utterance.language}"
    text = stem.with_suffix(".txt").read_text("utf-8").rstrip("\n")
    facts = json.loads(stem.with_suffix(".json").read_text("utf-8"))
    return text, facts, utterance.wav_path.read_bytes()


def loudness(wav: bytes) -> float:
    return rms(samples_of_wav(wav))


# --- saying -----------------------------------------------------------------


def test_say_returns_while_the_engine_is_still_working(make_voice):
    engine = GatedEspeak()
    engine.gate.clear()
    voice = make_voice(engine)
    utterance = voice.say("Maksut", "fi")  # returns with the engine held at the gate
    assert engine.started.wait(WAIT_S)
    assert utterance.outcome == "queued" and not utterance.finished.is_set()
    engine.gate.set()
    assert finished(utterance) == "played"
    text, facts, wav = recorded(utterance)
    assert text == "Maksut" and facts["language"] == "fi" and facts["outcome"] == "played"
    assert facts["voice"] == "espeak-ng|fi|150wpm" and facts["device"] == SPEAKER
    assert loudness(wav) > AUDIBLE  # speech, not silence
    assert voice.wait_idle(WAIT_S)


@pytest.mark.parametrize(
    ("language", "text", "voice_name"),
    [
        ("fi", "Numero A42, maksut", "fi"),
        ("sv", "Nummer A42, betalningar", "sv"),
        ("en", "Number A42, payments", "en-gb"),
        ("et", "Number A42, maksed", "et"),
    ],
)
def test_each_language_is_said_in_its_own_voice(make_voice, language, text, voice_name):
    voice = make_voice()
    utterance = voice.say(text, language)
    assert finished(utterance) == "played"
    said, facts, wav = recorded(utterance)
    assert said == text
    assert facts["voice"].split("|")[1] == voice_name
    assert loudness(wav) > AUDIBLE
    with wave.open(io.BytesIO(wav)) as played:
        assert (played.getnchannels(), played.getframerate()) == (1, SAMPLE_RATE)


def test_the_same_text_in_another_language_is_another_recording(make_voice):
    voice = make_voice()
    finnish, english = voice.say("Neuvonta", "fi"), None
    assert finished(finnish) == "played"
    english = voice.say("Neuvonta", "en")
    assert finished(english) == "played"
    assert finnish.voice != english.voice
    assert recorded(finnish)[2] != recorded(english)[2]


def test_a_config_voice_replaces_the_default_one(make_voice, tmp_path):
    voice = make_voice(GatedEspeak(voices={"en": "en-us"}), cache_dir=tmp_path / "c")
    utterance = voice.say("Payments", "en")
    assert finished(utterance) == "played"
    assert recorded(utterance)[1]["voice"] == "espeak-ng|en-us|150wpm"


# --- focus moves faster than speech ------------------------------------------


def test_a_newer_utterance_cancels_one_still_being_synthesised(make_voice):
    engine = GatedEspeak()
    engine.gate.clear()
    voice = make_voice(engine)
    first = voice.say("Maksut ja laskut", "fi")
    assert engine.started.wait(WAIT_S)
    second = voice.say("Luvat ja lisenssit", "fi")  # the focus moved on
    engine.gate.set()
    assert finished(first) == "interrupted" and first.wav_path is None
    assert finished(second) == "played"
    assert recorded(second)[0] == "Luvat ja lisenssit"


def test_a_newer_utterance_stops_the_one_being_played(make_voice):
    # aplay on ALSA's null device is done at once: a player that keeps playing
    # until it is stopped stands in for a long sentence on a real speaker
    player = ("sh", "-c", "exec sleep 600", "{device}", "{wav}")
    voice = make_voice(player=player)
    first = voice.say("Neuvonta", "fi")
    assert first.playing.wait(WAIT_S)
    second = voice.say("Maksut", "fi")
    assert finished(first) == "interrupted"
    assert second.playing.wait(WAIT_S)
    voice.stop()
    assert finished(second) == "interrupted"
    assert first.wav_path != second.wav_path and second.wav_path.exists()
    assert voice.wait_idle(WAIT_S)


def test_without_interrupt_utterances_are_said_in_turn(make_voice):
    engine = GatedEspeak()
    engine.gate.clear()
    voice = make_voice(engine)
    said = [voice.say(word, "en", interrupt=False) for word in ("Payments", "Permits", "Advice")]
    engine.gate.set()
    assert [finished(u) for u in said] == ["played"] * 3
    assert [u.serial for u in said] == sorted(u.serial for u in said)
    assert [text for text, _ in engine.calls] == ["Payments", "Permits", "Advice"]


# --- the cache ----------------------------------------------------------------


def test_a_text_said_again_comes_from_the_cache(make_voice, tmp_path):
    engine = GatedEspeak()
    voice = make_voice(engine, cache_dir=tmp_path / "cache")
    first = voice.say("Tillstånd och licenser", "sv")
    assert finished(first) == "played" and not first.from_cache
    again = voice.say("Tillstånd och licenser", "sv")
    assert finished(again) == "played" and again.from_cache
    assert engine.calls == [("Tillstånd och licenser", "sv")]
    assert recorded(first)[2] == recorded(again)[2]
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 1
    slower = make_voice(GatedEspeak(words_per_minute=120), cache_dir=tmp_path / "cache")
    assert finished(slower.say("Tillstånd och licenser", "sv")) == "played"
    assert len(list((tmp_path / "cache").glob("*.wav"))) == 2  # another voice setting


# --- where the sound goes ---------------------------------------------------------


def test_a_plugged_in_usb_headset_gets_the_next_utterance(make_voice, tmp_path):
    cards = tmp_path / "cards"
    cards.write_text(CARDS_SPEAKER_ONLY)
    voice = make_voice(headset=AsoundCards(cards), headset_device=HEADSET)
    before = voice.say("Payments", "en")
    assert finished(before) == "played" and before.device == SPEAKER
    cards.write_text(CARDS_WITH_USB_HEADSET)  # the kernel lists the new card
    after = voice.say("Permits", "en")
    assert finished(after) == "played" and after.device == HEADSET
    assert recorded(after)[1]["device"] == HEADSET
    cards.write_text(CARDS_SPEAKER_ONLY)
    last = voice.say("Advice", "en")
    assert finished(last) == "played" and last.device == SPEAKER


def test_the_usb_card_is_the_headset_device_when_none_is_configured(tmp_path):
    cards = tmp_path / "cards"
    cards.write_text(CARDS_WITH_USB_HEADSET)
    assert AsoundCards(cards).device() == "plughw:CARD=Headset,DEV=0"
    assert [c[2] for c in AsoundCards(cards).cards()] == [
        "vc4-hdmi",
        "bcm2835_headpho",
        "USB-Audio",
    ]
    cards.write_text(CARDS_SPEAKER_ONLY)
    assert AsoundCards(cards).device() is None
    assert AsoundCards(tmp_path / "absent").device() is None  # no sound at all: no headset
    cards.write_bytes(b"\x00\xff" * 40_000 + b"\n 3 [$(reboot) ]: USB-Audio - evil\n")
    assert AsoundCards(cards).device() is None  # a card id that is no ALSA name is not used


def test_plugging_a_headset_in_switches_speech_on_and_pulling_it_out_off(make_voice, tmp_path):
    cards = tmp_path / "cards"
    cards.write_text(CARDS_SPEAKER_ONLY)
    changes: list[bool] = []
    changed = threading.Event()

    def on_headset(present: bool) -> None:
        changes.append(present)
        changed.set()

    voice = make_voice(
        headset=AsoundCards(cards),
        headset_device=HEADSET,
        enabled=False,
        watch_headset_s=0.02,
        on_headset=on_headset,
    )
    assert not voice.enabled and voice.say("Maksut", "fi") is None
    cards.write_text(CARDS_WITH_USB_HEADSET)
    assert changed.wait(WAIT_S)
    assert changes == [True] and voice.enabled
    assert finished(voice.say("Maksut", "fi")) == "played"
    assert voice.spoken[-1].device == HEADSET
    voice.reset()  # the next customer with the headset still in is still heard
    assert voice.enabled
    changed.clear()
    cards.write_text(CARDS_SPEAKER_ONLY)
    assert changed.wait(WAIT_S)
    assert changes == [True, False] and not voice.enabled


def test_a_headset_jack_is_found_by_its_input_device_name(tmp_path, caplog):
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    for event, name in (("event0", "vc4-hdmi HDMI Jack"), ("event3", "USB Headphone Jack")):
        (sys_root / event / "device").mkdir(parents=True)
        (sys_root / event / "device" / "name").write_text(name + "\n")
    dev_root.mkdir()
    jack = JackSwitch(sys_root=sys_root, dev_root=dev_root)
    assert jack.jacks() == [dev_root / "event3"]
    with caplog.at_level(logging.WARNING, "vuoro.kiosk.voice"):
        assert jack.device() is None  # no device node to ask: no headset, said once
        assert jack.device() is None
    assert sum("cannot read the headphone jack" in r.message for r in caplog.records) == 1
    assert JackSwitch(sys_root=tmp_path / "none", dev_root=dev_root).device() is None


def test_headset_sources_by_config_name():
    assert isinstance(headset_source("none"), NoHeadset)
    both = headset_source("auto")
    assert isinstance(both, AnyHeadset)
    assert [type(s) for s in both.sources] == [AsoundCards, JackSwitch]


# --- per customer -------------------------------------------------------------------


def test_volume_steps_are_bounded_and_reset_after_the_customer(make_voice):
    voice = make_voice(enabled=False, volume=5)
    voice.enabled = True
    for _ in range(20):
        voice.volume_up()
    assert voice.volume == VOLUME_MAX
    loud = voice.say("Maksut", "fi")
    assert finished(loud) == "played"
    for _ in range(20):
        voice.volume_down()
    assert voice.volume == VOLUME_MIN  # never silent
    quiet = voice.say("Maksut", "fi")
    assert finished(quiet) == "played"
    assert 0 < loudness(recorded(quiet)[2]) < loudness(recorded(loud)[2]) / 10
    voice.reset()
    assert voice.volume == 5 and not voice.enabled
    assert voice.say("Maksut", "fi") is None


def test_reset_stops_the_speech_of_the_customer_who_left(make_voice):
    engine = GatedEspeak()
    engine.gate.clear()
    voice = make_voice(engine, enabled=False)
    voice.enabled = True  # by a key, for this customer
    leaving = voice.say("Numero A42, palvelupiste 3", "fi")
    waiting = voice.say("Kiitos", "fi", interrupt=False)
    assert engine.started.wait(WAIT_S)
    voice.reset()
    engine.gate.set()
    assert finished(leaving) == "interrupted" and finished(waiting) == "dropped"
    assert not voice.enabled


def test_always_on_speech_stays_on_after_each_customer(make_voice):
    voice = make_voice(enabled=False, always_on=True)
    assert voice.enabled
    voice.enabled = False  # a customer switched it off
    voice.reset()
    assert voice.enabled


# --- nothing reaches the UI -------------------------------------------------------


def test_a_missing_engine_is_logged_once_and_the_kiosk_keeps_working(make_voice, caplog, tmp_path):
    engine = EspeakEngine(binary="espeak-ng-not-installed")
    voice = make_voice(engine, cache_dir=tmp_path / "nothing-cached")
    with caplog.at_level(logging.WARNING, "vuoro.kiosk.voice"):
        first = voice.say("Maksut", "fi")
        assert finished(first) == "unavailable"
        assert "espeak-ng is not installed" in first.error
        assert voice.say("Luvat", "fi") is None  # a no-op from then on
        assert voice.say("Luvat", "fi") is None
    warnings = [r.message for r in caplog.records if "speech in fi is off" in r.message]
    assert len(warnings) == 1 and "install the Debian package espeak-ng" in warnings[0]


def test_a_missing_voice_mutes_only_its_language(make_voice, caplog):
    voice = make_voice(GatedEspeak(voices={"et": "xx-no-such-voice"}))
    with caplog.at_level(logging.WARNING, "vuoro.kiosk.voice"):
        assert finished(voice.say("Maksed", "et")) == "unavailable"
        assert voice.say("Maksed", "et") is None
    assert finished(voice.say("Maksut", "fi")) == "played"
    assert not voice.available("et") and voice.available("fi")


def test_a_missing_player_or_device_fails_the_utterance_not_the_kiosk(make_voice, caplog):
    with caplog.at_level(logging.WARNING, "vuoro.kiosk.voice"):
        no_player = make_voice(player=("no-such-player", "{wav}"))
        assert finished(no_player.say("Maksut", "fi")) == "failed"
        no_device = make_voice(speaker_device="no_such_alsa_device")
        failed = no_device.say("Maksut", "fi")
        assert finished(failed) == "failed" and "no_such_alsa_device" in failed.error
    assert any("cannot start the player" in r.message for r in caplog.records)
    assert any("the player failed on no_such_alsa_device" in r.message for r in caplog.records)
    assert finished(no_player.say("Luvat", "fi")) == "failed"  # and it keeps trying, quietly


@pytest.mark.parametrize(
    "text",
    [
        "Maksut " * 1500,  # 10 kB
        "Maksut\x00\x07\x1b[2J\r\n\tja\u200b laskut\ufeff",
        "\u202eשלום עולם\u202c Maksut مرحبا",
        "🙂🎫💶 Maksut 👩‍👩‍👧‍👦",
        "<speak><audio src='file:///etc/passwd'/></speak> -w /tmp/x --stdout Maksut",
    ],
    ids=["10kB", "control", "rtl", "emoji", "markup-and-options"],
)
def test_hostile_text_is_bounded_and_said_safely(make_voice, text):
    voice = make_voice()
    utterance = voice.say(text, "fi")
    assert finished(utterance) == "played"
    said, facts, wav = recorded(utterance)
    assert said == utterance.text and facts["text"] == said
    assert 0 < len(said) <= MAX_UTTERANCE_CHARS
    assert "Maksut" in said
    assert not any(unicodedata.category(c)[0] in "CS" and c not in "%" for c in said)
    assert not any("\u0590" <= c <= "\u06ff" for c in said)
    assert loudness(wav) > AUDIBLE


@pytest.mark.parametrize(
    ("text", "language"),
    [("", "fi"), ("🙂🙂", "fi"), (None, "fi"), (42, "en"), ("Maksut", "de"), ("Maksut", None)],
)
def test_nothing_sayable_is_a_quiet_no_op(make_voice, text, language):
    voice = make_voice()
    assert voice.say(text, language) is None
    assert voice.wait_idle(WAIT_S) and voice.spoken == []


def test_speech_off_says_nothing_and_records_nothing(make_voice, tmp_path):
    voice = make_voice(enabled=False)
    assert voice.say("Maksut", "fi") is None
    assert not (tmp_path / "said").exists()


def test_after_shutdown_say_is_a_no_op(make_voice):
    voice = make_voice()
    assert finished(voice.say("Maksut", "fi")) == "played"
    worker = voice._worker
    voice.shutdown()
    assert worker is not None and not worker.is_alive()
    assert voice.say("Maksut", "fi") is None


def test_every_language_of_the_kiosk_can_be_spoken(make_voice):
    voice = make_voice()
    assert [language for language in LANGUAGES if voice.available(language)] == list(LANGUAGES)


# --- from the kiosk's config --------------------------------------------------------


def test_the_voice_is_built_from_the_speech_table(tmp_path):
    settings = config.parse(
        textwrap.dedent(
            """
            [speech]
            enabled = true
            voices = { fi = "fi", en = "en-us" }
            speaker_device = "null"
            headset_device = "plug:null"
            headset = "none"
            volume = 4
            words_per_minute = 170

            [[services]]
            id = "payments"
            prefix = "A"
            name = "Payments"
            """
        )
    ).speech
    voice = voice_from_config(settings, tmp_path / "cache", record_dir=tmp_path / "said")
    try:
        assert voice.enabled and voice.volume == 4 and isinstance(voice.headset, NoHeadset)
        utterance = voice.say("Payments", "en")
        assert finished(utterance) == "played"
        assert recorded(utterance)[1]["voice"] == "espeak-ng|en-us|170wpm"
        assert utterance.device == "null"
    finally:
        voice.shutdown()


# --- the ticket's numbers, said -------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "said"), [("A042", "A42"), ("B7", "B7"), ("AK1-07", "A-K1 7"), ("0100", "100")]
)
def test_a_ticket_number_is_said_the_way_people_say_it(number, said):
    assert spoken.spoken_ticket_number(number) == said


@pytest.mark.parametrize(
    ("minutes", "language", "said"),
    [
        (0, "en", "less than a minute"),
        (0.4, "fi", "alle minuutti"),
        (1, "en", "about 1 minute"),
        (1.4, "fi", "noin 1 minuutti"),
        (7, "sv", "ungefär 7 minuter"),
        (14.6, "fi", "noin 15 minuuttia"),
        (23, "et", "umbes 25 minutit"),
        (58, "en", "about 1 hour"),
        (150, "sv", "ungefär 3 timmar"),
        (10**9, "en", "about 24 hours"),
    ],
)
def test_the_wait_is_rounded_as_a_person_would_say_it(minutes, language, said):
    assert spoken.spoken_wait(minutes, language) == said


@pytest.mark.parametrize("minutes", [-1, float("nan"), "15", None, True])
def test_an_impossible_wait_is_a_clear_error(minutes):
    with pytest.raises(SpeechInputError, match="a wait must be"):
        spoken.spoken_wait(minutes, "fi")


def test_an_unknown_language_for_the_wait_is_a_clear_error():
    with pytest.raises(SpeechInputError, match="no speech in language 'de'"):
        spoken.spoken_wait(5, "de")


def test_a_piper_voice_from_the_config_speaks_its_language_only(tmp_path, monkeypatch):
    """Piper itself is not installed here: the display's tests' stand-in, speaking
    its command-line contract (text on stdin, raw 16 kHz PCM out), named piper on PATH."""
    from tests.test_speech import PIPER_STAND_IN

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    piper = bin_dir / "piper"
    piper.write_text(f'#!/bin/sh\nexec {sys.executable} -c "$PIPER_CODE" "$@"\n')
    piper.chmod(0o755)
    monkeypatch.setenv("PIPER_CODE", PIPER_STAND_IN)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "fi.onnx").write_bytes(b"")
    (tmp_path / "fi.onnx.json").write_text('{"audio": {"sample_rate": 16000}}')
    text = 'engine = "piper"\nvoices = { fi = "fi.onnx" }\nspeaker_device = "null"'
    toml = textwrap.dedent(TWO_SERVICES).replace(
        "[[services]]", f"[speech]\n{text}\n\n[[services]]", 1
    )
    settings = config.parse(toml, "kiosk.toml", tmp_path).speech
    voice = voice_from_config(
        settings, tmp_path / "cache", record_dir=tmp_path / "said", watch_headset_s=None
    )
    try:
        voice.enabled = True
        utterance = voice.say("Numero A42, maksut", "fi")
        assert finished(utterance) == "played"
        assert recorded(utterance)[1]["voice"] == "piper|fi.onnx"
        assert loudness(recorded(utterance)[2]) > AUDIBLE
        assert finished(voice.say("Number A42", "en")) == "unavailable"  # no English model
    finally:
        voice.shutdown()
