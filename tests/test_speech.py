"""Spoken calls with the real espeak-ng: the words, the audio, the cache, hostile input."""

from __future__ import annotations

import array
import io
import math
import multiprocessing
import os
import shutil
import stat
import sys
import textwrap
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server import i18n
from server.speech import (
    LANGUAGES,
    MAX_COUNTER_CHARS,
    MAX_NUMBER_CHARS,
    SAMPLE_RATE,
    Announcement,
    Engine,
    EspeakEngine,
    PiperEngine,
    Speech,
    SpeechError,
    SpeechFailed,
    SpeechInputError,
    SpeechUnavailable,
    chime,
    phrase,
)

ESPEAK = shutil.which("espeak-ng")


@pytest.fixture(autouse=True)
def espeak_installed() -> None:
    """`make test` installs espeak-ng: without it these tests fail, saying so."""
    if ESPEAK is None:
        pytest.fail("espeak-ng is needed: run `make test` (tools/sysdeps.sh test installs it)")


class CountingEspeak(EspeakEngine):
    """The real engine, counting the phrases it is asked to synthesise."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, str]] = []

    def synthesize(self, text: str, language: str) -> bytes:
        self.calls.append((text, language))
        return super().synthesize(text, language)


def decode(wav: bytes) -> array.array:
    with wave.open(io.BytesIO(wav), "rb") as recording:
        assert recording.getnchannels() == 1
        assert recording.getsampwidth() == 2
        assert recording.getframerate() == SAMPLE_RATE
        assert recording.getcomptype() == "NONE"
        frames = recording.readframes(recording.getnframes())
        assert len(frames) == 2 * recording.getnframes()
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def rms(samples: array.array) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def part(samples: array.array, start_s: float, end_s: float) -> array.array:
    return samples[round(start_s * SAMPLE_RATE) : round(end_s * SAMPLE_RATE)]


def cached_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wav"))


def assert_intact(directory: Path) -> None:
    """Every cached recording decodes whole, and no temporary file is left."""
    for path in cached_files(directory):
        assert len(decode(path.read_bytes())) > SAMPLE_RATE // 10, path
    assert not list(directory.glob("*.tmp")) and not list(directory.glob(".*.tmp"))


@pytest.fixture
def engine() -> CountingEspeak:
    return CountingEspeak()


@pytest.fixture
def speech(tmp_path: Path, engine: CountingEspeak) -> Speech:
    return Speech(tmp_path / "speech", engine)


# --- the words --------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "counter", "expected"),
    [
        ("A042", "3", {
            "fi": "Numero A42, palvelupiste 3.",
            "sv": "Nummer A42, lucka 3.",
            "en": "Number A42, counter 3.",
            "et": "Number A42, teeninduslett 3.",
        }),
        ("B7", "Room 12", {
            "fi": "Numero B7, Room 12.",
            "sv": "Nummer B7, Room 12.",
            "en": "Number B7, Room 12.",
            "et": "Number B7, Room 12.",
        }),
        ("100", "03", {
            "fi": "Numero 100, palvelupiste 3.",
            "sv": "Nummer 100, lucka 3.",
            "en": "Number 100, counter 3.",
            "et": "Number 100, teeninduslett 3.",
        }),
        ("C1000", "Tiski Ä", {
            "fi": "Numero C1000, Tiski Ä.",
            "sv": "Nummer C1000, Tiski Ä.",
            "en": "Number C1000, Tiski Ä.",
            "et": "Number C1000, Tiski Ä.",
        }),
        ("A000", "Kassa 5", {
            "fi": "Numero A0, Kassa 5.",
            "sv": "Nummer A0, Kassa 5.",
            "en": "Number A0, Kassa 5.",
            "et": "Number A0, Kassa 5.",
        }),
    ],
)  # fmt: skip
def test_phrase_is_said_the_way_people_say_it(number, counter, expected):
    assert {language: phrase(number, counter, language) for language in expected} == expected


@pytest.mark.parametrize(
    ("number", "said"),
    [
        ("A042", "A42"),  # one letter against its number: its name, in every voice
        ("a042", "A42"),
        ("0", "0"),
        ("000", "0"),
        ("0042", "42"),
        ("AK1-07", "A-K1 7"),  # a standalone kiosk's series: letters spelled out
        ("AB12", "A-B12"),
        ("A", "A"),
        ("A 0 4 2", "A0 4 2"),
        ("12345678", "1 2 3 4 5 6 7 8"),  # not "twelve million ..."
        ("Ä5", "Ä5"),
    ],
)
def test_ticket_numbers(number, said):
    assert phrase(number, "", "en") == f"Number {said}."


def test_the_number_is_said_as_a_number_by_espeak():
    """What espeak-ng makes of the phrase: "forty-two", "neljäkymmentäkaksi"."""
    import subprocess

    def phonemes(text: str, voice: str) -> str:
        done = subprocess.run(
            [ESPEAK, "-q", "-x", "-v", voice], input=text.encode(), capture_output=True, check=True
        )
        return done.stdout.decode()

    assert "f'o@ti t'u:" in phonemes(phrase("A042", "3", "en"), "en-gb")
    assert "a#" not in phonemes(phrase("A042", "3", "en"), "en-gb")  # not the article "a"
    assert "n,elj&kymment&k'aksi" in phonemes(phrase("A042", "3", "fi"), "fi")
    assert "k'olme" in phonemes(phrase("A042", "3", "fi"), "fi")


def test_languages_are_the_servers():
    assert set(LANGUAGES) == set(i18n.LANGUAGES)


@pytest.mark.parametrize("language", ["de", "", "FI", "fi-FI", "../fi", None])
def test_an_unknown_language_is_a_clear_error(language):
    with pytest.raises(SpeechInputError, match="no spoken calls in language"):
        phrase("A042", "3", language)


@pytest.mark.parametrize(
    ("number", "counter", "message"),
    [
        ("A" * 10_000, "3", "ticket number is 10000 characters long"),
        ("A042", "x" * 10_000, "counter is 10000 characters long"),
        ("A" * (MAX_NUMBER_CHARS + 1), "3", "at most"),
        ("A042", "x" * (MAX_COUNTER_CHARS + 1), "at most"),
        ("", "3", "no letter or digit"),
        ("--", "3", "no letter or digit"),
        ("\x00\n\t", "3", "no letter or digit"),
        ("🙂", "3", "no letter or digit"),
        (42, "3", "must be text"),
    ],
)
def test_bad_input_is_a_clear_error(number, counter, message):
    with pytest.raises(SpeechInputError, match=message) as raised:
        phrase(number, counter, "fi")
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, SpeechError)


@pytest.mark.parametrize(
    ("counter", "said"),
    [
        ("--help", "help"),
        ("-w /etc/passwd", "w etc/passwd"),
        ("<speak>3</speak>", "speak 3 speak"),
        ("[[h@'l@U]]", "h l U"),  # no phoneme input
        ("3\x00\n-v de", "3 v de"),
        ("Kassa\r\n5", "Kassa 5"),
        ("\u202eשלום 3\u202c", "palvelupiste 3"),  # no voice here reads Hebrew
        ("مكتب ٣", "palvelupiste 3"),  # digits of any script are numbers
        ("Кабинет 5", "palvelupiste 5"),
        ("Päivystys Ⅻ ½", "Päivystys"),
        ("Tiski 🙂", "Tiski"),
        ("🙂", None),  # nothing left to say: the counter is left out
        ("St. John's", "St John's"),
        ("B-wing", "B-wing"),
        ("\u200b3\u200b", "palvelupiste 3"),
    ],
)
def test_hostile_counters_become_harmless_words(counter, said):
    text = phrase("A042", counter, "fi")
    assert text == (f"Numero A42, {said}." if said else "Numero A42.")
    assert not any(char in text for char in "<>[]@\x00\n\r\u202e")
    assert not any(word.startswith("-") for word in text.split())  # nothing like an option


@pytest.mark.parametrize(
    "counter",
    ["--help", "-w /etc/passwd", "<speak>3</speak>", "3\x00\n-v de", "\u202eשלום 3\u202c",
     "مكتب ٣", "Tiski 🙂", "🙂", "\u200b"],
)  # fmt: skip
def test_hostile_counters_are_spoken_harmlessly_by_espeak(speech, counter):
    announcement = speech.announcement("A042", counter, ["fi", "en"])
    samples = decode(announcement.wav)
    for language, start, end in announcement.segments[1:]:
        assert announcement.texts[language] == phrase("A042", counter, language)
        assert 0.5 <= end - start <= 6.0
        assert rms(part(samples, start, end)) > 1000


def test_hostile_input_reaches_espeak_only_as_text_on_stdin(tmp_path, monkeypatch):
    """A wrapper on PATH records espeak-ng's argv and stdin, then runs the real one."""
    wrapper = tmp_path / "bin" / "espeak-ng"
    wrapper.parent.mkdir()
    wrapper.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            printf '%s\\n' "$@" >> {tmp_path}/argv
            if [ "$1" = --voices ]; then exec {ESPEAK} "$@"; fi
            tee -a {tmp_path}/stdin | exec {ESPEAK} "$@"
            """)
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    speech = Speech(tmp_path / "cache", EspeakEngine())
    spoken = speech.announcement("--help", "-w /etc/passwd\n<speak>", ["fi", "en"])
    # letters in a ticket number are spelled out, as a prefix is
    assert spoken.texts["fi"] == "Numero H-E-L-P, w etc/passwd speak."
    announcement = speech.announcement("A042", "-w /etc/passwd <speak>", ["en"])
    argv = (tmp_path / "argv").read_text().splitlines()
    assert set(argv) <= {"--voices", "-v", "fi", "en-gb", "-s", "150", "-b", "1", "--stdout"}
    assert (tmp_path / "stdin").read_text().splitlines()[-1] == announcement.texts["en"]
    assert announcement.texts["en"] == "Number A42, w etc/passwd speak."


# --- the audio --------------------------------------------------------------


def test_announcement_is_a_chime_then_each_language(speech):
    announcement = speech.announcement("A042", "3", ["fi", "sv", "en"])
    assert isinstance(announcement, Announcement)
    samples = decode(announcement.wav)
    assert announcement.duration_s == pytest.approx(len(samples) / SAMPLE_RATE)
    assert list(announcement.texts) == ["fi", "sv", "en"]
    assert announcement.texts["sv"] == "Nummer A42, lucka 3."
    labels = [label for label, _, _ in announcement.segments]
    assert labels == ["chime", "fi", "sv", "en"]

    bell = chime()
    assert samples[: len(bell)] == bell  # the chime first
    assert abs(bell[0]) < 50 and max(abs(s) for s in bell[:20]) < 3000  # a soft attack
    assert max(abs(s) for s in bell[-50:]) < 50  # and it dies away, no click at its end
    assert rms(bell) > 2000

    for (_, _, end), (label, start, finish) in zip(
        announcement.segments, announcement.segments[1:], strict=False
    ):
        gap = part(samples, end, start)
        spoken = part(samples, start, finish)
        assert 0.25 <= start - end <= 0.45
        assert rms(gap) == 0  # exact silence between the parts
        assert 0.5 <= finish - start <= 6.0, label  # a plausible length for the phrase
        assert rms(spoken) > 1000, label  # well above the silence: a voice
    assert announcement.segments[-1][2] == pytest.approx(announcement.duration_s)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_speaks(speech, language):
    assert speech.available(language)
    announcement = speech.announcement("B7", "Room 12", [language])
    samples = decode(announcement.wav)
    _, start, end = announcement.segments[1]
    assert 0.5 <= end - start <= 6.0
    assert rms(part(samples, start, end)) > 1000


def test_nothing_happens_before_the_first_call(tmp_path):
    Speech(tmp_path / "speech", EspeakEngine())
    assert not (tmp_path / "speech").exists()


def test_languages_available(speech):
    assert speech.languages_available() == list(LANGUAGES)
    assert not speech.available("de")


def test_a_longer_number_takes_longer_to_say(speech):
    short = speech.announcement("1", "", ["fi"]).segments[1]
    long = speech.announcement("C1777", "Room 12", ["fi"]).segments[1]
    assert long[2] - long[1] > short[2] - short[1]


def test_languages_said_once_each_in_the_order_given(speech):
    announcement = speech.announcement("A042", "3", ["en", "fi", "en"])
    assert list(announcement.texts) == ["en", "fi"]
    with pytest.raises(SpeechInputError, match="at least one language"):
        speech.announcement("A042", "3", [])
    with pytest.raises(SpeechInputError, match="no spoken calls in language 'de'"):
        speech.announcement("A042", "3", ["fi", "de"])


# --- the cache --------------------------------------------------------------


def test_second_call_does_not_run_the_engine(speech, engine, tmp_path):
    first = speech.announcement("A042", "3", ["fi", "sv", "en"])
    assert len(engine.calls) == 3
    assert len(cached_files(tmp_path / "speech")) == 3
    again = Speech(tmp_path / "speech", engine).announcement("A042", "3", ["fi", "sv", "en"])
    assert len(engine.calls) == 3
    assert again.wav == first.wav
    speech.announcement("A043", "3", ["fi"])
    assert engine.calls[-1] == ("Numero A43, palvelupiste 3.", "fi")


def test_another_voice_setting_is_another_recording(tmp_path):
    slow, fast = CountingEspeak(words_per_minute=120), CountingEspeak(words_per_minute=200)
    Speech(tmp_path, slow).announcement("A042", "3", ["fi"])
    Speech(tmp_path, fast).announcement("A042", "3", ["fi"])
    assert len(slow.calls) == len(fast.calls) == 1
    assert len(cached_files(tmp_path)) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated: a process killed mid-write elsewhere
        lambda data: data[:30],  # a torn header
        lambda data: b"",
        lambda data: b"\x00" * len(data),
        lambda data: data.replace(b"WAVE", b"JUNK", 1),
    ],
)
def test_a_damaged_cache_file_is_made_again(speech, engine, tmp_path, damage):
    first = speech.announcement("A042", "3", ["fi"])
    (path,) = cached_files(tmp_path / "speech")
    path.write_bytes(damage(path.read_bytes()))
    again = speech.announcement("A042", "3", ["fi"])
    assert len(engine.calls) == 2
    assert again.wav == first.wav
    assert_intact(tmp_path / "speech")
    speech.announcement("A042", "3", ["fi"])
    assert len(engine.calls) == 2


def test_a_cache_file_in_another_format_is_made_again(speech, engine, tmp_path):
    speech.announcement("A042", "3", ["fi"])
    (path,) = cached_files(tmp_path / "speech")
    with wave.open(str(path), "wb") as other:
        other.setnchannels(1)
        other.setsampwidth(2)
        other.setframerate(8000)
        other.writeframes(b"\x01\x00" * 8000)
    speech.announcement("A042", "3", ["fi"])
    assert len(engine.calls) == 2


def test_the_cache_is_bounded(tmp_path, engine):
    speech = Speech(tmp_path, engine, max_files=3)
    for number in range(1, 7):
        speech.announcement(f"A{number}", "3", ["fi"])
    files = cached_files(tmp_path)
    assert len(files) == 3
    speech.announcement("A6", "3", ["fi"])  # the newest are the ones kept
    assert len(engine.calls) == 6
    one_size = files[0].stat().st_size
    small = Speech(tmp_path / "small", engine, max_bytes=int(one_size * 2.5))
    for number in range(1, 6):
        small.announcement(f"B{number}", "3", ["fi"])
    assert 1 <= len(cached_files(tmp_path / "small")) <= 3
    assert sum(p.stat().st_size for p in cached_files(tmp_path / "small")) <= one_size * 2.5


def test_an_unwritable_cache_still_speaks(tmp_path, engine):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    speech = Speech(blocker / "speech", engine)
    announcement = speech.announcement("A042", "3", ["fi"])
    assert rms(decode(announcement.wav)) > 500
    speech.announcement("A042", "3", ["fi"])
    assert len(engine.calls) == 2


def test_concurrent_announcements_from_threads(tmp_path):
    speech = Speech(tmp_path, EspeakEngine())
    numbers = ["A042", "A043", "A042", "B7", "A043", "A042", "B7", "A042"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: speech.announcement(n, "3", ["fi", "sv"]), numbers))
    by_number: dict[str, bytes] = {}
    for number, announcement in zip(numbers, results, strict=True):
        assert by_number.setdefault(number, announcement.wav) == announcement.wav
    assert len(cached_files(tmp_path)) == 6
    assert_intact(tmp_path)


def announce_in_a_process(cache_dir: str) -> list[str]:
    """A server worker: several calls, each in two languages; hex digests of the WAVs."""
    import hashlib

    speech = Speech(Path(cache_dir), EspeakEngine())
    return [
        hashlib.sha256(speech.announcement(number, "3", ["fi", "en"]).wav).hexdigest()
        for number in ("A042", "A043", "B7", "A042")
    ]


def test_concurrent_announcements_from_two_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        first, second = pool.map(announce_in_a_process, [str(tmp_path)] * 2)
    assert first == second
    assert first[0] == first[3]
    assert len(cached_files(tmp_path)) == 6
    assert_intact(tmp_path)


# --- engines that are missing or fail ----------------------------------------


def test_a_missing_espeak_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    speech = Speech(tmp_path / "cache", EspeakEngine())
    assert not speech.available("fi")
    assert speech.languages_available() == []
    with pytest.raises(SpeechUnavailable, match="espeak-ng is not installed"):
        speech.announcement("A042", "3", ["fi"])
    with pytest.raises(SpeechUnavailable):
        EspeakEngine(binary=str(tmp_path / "nowhere" / "espeak-ng")).synthesize("hei", "fi")


def test_a_missing_voice_is_unavailable(tmp_path):
    speech = Speech(tmp_path, EspeakEngine(voices={"et": "xx-nonexistent"}))
    assert speech.languages_available() == ["en", "fi", "sv"]
    with pytest.raises(SpeechUnavailable, match="no voice 'xx-nonexistent'"):
        speech.announcement("A042", "3", ["fi", "et"])


def stand_in(tmp_path: Path, name: str, body: str) -> Path:
    """An executable on disk standing in for a broken engine."""
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_an_engine_that_hangs_or_fails_is_speech_failed(tmp_path):
    voices = f'if [ "$1" = --voices ]; then exec {ESPEAK} --voices; fi\n'
    hanging = stand_in(tmp_path, "hangs", voices + "exec sleep 30\n")
    with pytest.raises(SpeechFailed, match=r"took longer than 0\.5 s"):
        EspeakEngine(binary=str(hanging), timeout_s=0.5).synthesize("hei", "fi")
    failing = stand_in(tmp_path, "fails", voices + "echo 'voice data broken' >&2; exit 3\n")
    with pytest.raises(SpeechFailed, match="exited with 3: voice data broken"):
        EspeakEngine(binary=str(failing)).synthesize("hei", "fi")
    silent = stand_in(tmp_path, "silent", voices + "cat > /dev/null\n")
    with pytest.raises(SpeechFailed, match="produced no audio"):
        EspeakEngine(binary=str(silent)).synthesize("hei", "fi")
    garbage = stand_in(tmp_path, "garbage", voices + "echo 'not a wav'\n")
    with pytest.raises(SpeechFailed, match="not a WAV"):
        Speech(tmp_path / "c", EspeakEngine(binary=str(garbage))).announcement("A1", "3", ["fi"])
    assert not cached_files(tmp_path / "c")


# --- Piper ------------------------------------------------------------------

PIPER_STAND_IN = """\
import math, sys
args = sys.argv[1:]
assert args[0] == "--model" and args[2] == "--output_raw", args
text = sys.stdin.read()
assert text.endswith("\\n")
# one 0.1 s tone per word at 16 kHz, as 16-bit little-endian mono PCM
rate, out = 16000, bytearray()
for word in text.split():
    for n in range(rate // 10):
        out += int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True)
sys.stdout.buffer.write(bytes(out))
"""


def test_piper_is_unavailable_until_a_voice_is_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    engine = PiperEngine({"fi": tmp_path / "fi_FI-harri-medium.onnx"})
    assert isinstance(engine, Engine)
    assert not engine.available("fi") and not engine.available("sv")
    with pytest.raises(SpeechUnavailable, match="no Piper voice is configured for 'sv'"):
        engine.synthesize("Nummer A42.", "sv")
    with pytest.raises(SpeechUnavailable, match="the Piper voice for 'fi' is missing"):
        engine.synthesize("Numero A42.", "fi")
    (tmp_path / "fi_FI-harri-medium.onnx").write_bytes(b"")
    (tmp_path / "fi_FI-harri-medium.onnx.json").write_text('{"audio": {"sample_rate": 16000}}')
    with pytest.raises(SpeechUnavailable, match="Piper is not installed"):
        engine.synthesize("Numero A42.", "fi")


def test_piper_output_is_resampled_to_the_announcement_format(tmp_path, monkeypatch):
    """Piper itself is not installed here: a stand-in speaking its command-line
    contract (text on stdin, ``--model``, raw 16 kHz PCM on stdout) checks our side."""
    script = stand_in(tmp_path, "piper", f'exec {sys.executable} -c "$PIPER_CODE" "$@"\n')
    model = tmp_path / "fi.onnx"
    model.write_bytes(b"")
    model.with_name("fi.onnx.json").write_text('{"audio": {"sample_rate": 16000}}')
    monkeypatch.setenv("PIPER_CODE", PIPER_STAND_IN)
    engine = PiperEngine({"fi": model}, binary=str(script))
    assert engine.available("fi")
    announcement = Speech(tmp_path / "cache", engine).announcement("A042", "3", ["fi"])
    samples = decode(announcement.wav)
    _, start, end = announcement.segments[1]
    # four words of 0.1 s each, resampled from 16 kHz
    assert end - start == pytest.approx(0.4, abs=0.01)
    assert rms(part(samples, start, end)) > 4000


@pytest.mark.parametrize(
    ("place", "said"),
    [
        # a full stop after a digit goes (espeak-ng says "kaksi kerros" either way)
        ("Huone 204, 2. kerros", "Numero A42, palvelupiste 3. Huone 204, 2 kerros."),
        ("Room 12.", "Numero A42, palvelupiste 3. Room 12."),  # one full stop, not two
        (" , ,", "Numero A42, palvelupiste 3."),  # nothing to say: left out
        ("<speak>B</speak>, -v de\x00", "Numero A42, palvelupiste 3. speak B speak, v de."),
        ("\u202eשלום, Kerros 2", "Numero A42, palvelupiste 3. Kerros 2."),
    ],
)
def test_where_to_go_is_said_after_the_counter(place, said):
    assert phrase("A042", "3", "fi", place) == said


def test_a_place_over_its_cap_is_refused():
    with pytest.raises(SpeechInputError):
        phrase("A042", "3", "fi", "x" * 121)
    with pytest.raises(SpeechInputError):
        phrase("A042", "3", "fi", None)


def test_an_announcement_says_each_language_its_own_place(speech):
    places = {"fi": "Huone 204, 2. kerros", "en": "Room 204, 2nd floor"}
    announcement = speech.announcement("A042", "3", ["fi", "en"], places)
    assert announcement.texts == {
        "fi": "Numero A42, palvelupiste 3. Huone 204, 2 kerros.",
        "en": "Number A42, counter 3. Room 204, 2nd floor.",
    }
    samples = decode(announcement.wav)
    for _language, start, end in announcement.segments[1:]:
        assert rms(part(samples, start, end)) > 1000
    plain = speech.announcement("A042", "3", ["fi", "en"])
    assert announcement.duration_s > plain.duration_s + 1.0  # the places are heard
