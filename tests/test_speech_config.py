"""The kiosk config's [speech] table: defaults, and mistakes named by file and line."""

from __future__ import annotations

import textwrap

import pytest

from kiosk import config
from tests.conftest import TWO_SERVICES

SPEECH = """
[speech]
enabled = false
always_on = false
engine = "espeak"
voices = { fi = "fi", en = "en-gb+f3" }
speaker_device = "default"
headset_device = "plughw:CARD=Headphones,DEV=0"
headset = "auto"
volume = 7
words_per_minute = 150
"""


def with_speech(speech: str = SPEECH) -> str:
    return TWO_SERVICES.replace("[[services]]", speech + "\n[[services]]", 1)


def error_for(text: str) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(textwrap.dedent(text), "kiosk.toml")
    return caught.value


def test_without_a_speech_table_speech_is_off_with_espeak_defaults():
    settings = config.parse(TWO_SERVICES).speech
    assert settings == config.SpeechConfig()
    assert not settings.enabled and not settings.always_on and settings.engine == "espeak"
    assert (settings.speaker_device, settings.headset, settings.volume) == ("default", "auto", 7)


def test_the_embedded_default_has_speech_off_and_a_voice_for_every_language():
    settings = config.load(None).speech
    assert not settings.enabled and not settings.always_on
    assert set(settings.voices) == {"en", "fi", "sv", "et"}


def test_a_speech_table_is_taken_as_written():
    settings = config.parse(with_speech()).speech
    assert settings.voices == {"fi": "fi", "en": "en-gb+f3"}
    assert settings.headset_device == "plughw:CARD=Headphones,DEV=0"


def test_a_piper_voice_is_a_model_file_relative_to_the_config(tmp_path):
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "fi_FI-harri-medium.onnx").write_bytes(b"model")
    text = with_speech(
        '[speech]\nengine = "piper"\nvoices = { fi = "voices/fi_FI-harri-medium.onnx" }'
    )
    settings = config.parse(text, "kiosk.toml", tmp_path).speech
    assert settings.voices == {"fi": str(tmp_path / "voices" / "fi_FI-harri-medium.onnx")}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("enabled = false", 'enabled = "yes"'), "'enabled' in [speech] must be bool"),
        (("always_on = false", "always_on = 1"), "'always_on' in [speech] must be bool"),
        (('engine = "espeak"', 'engine = "festival"'), "must be one of espeak, piper"),
        (('engine = "espeak"', 'engine = "piper"'), "must be a Piper voice's .onnx file"),
        (('fi = "fi"', 'fi = "--stdout -w /etc/passwd"'), "must be an espeak-ng voice name"),
        (('fi = "fi"', 'fi = "fi;reboot"'), "must be an espeak-ng voice name"),
        (('fi = "fi"', 'fi = "../fi"'), "must be an espeak-ng voice name"),
        (('fi = "fi"', f'fi = "{"f" * 5000}"'), "must be an espeak-ng voice name"),
        (('fi = "fi"', 'xx = "fi"'), "'voices' has unknown language 'xx'"),
        (('fi = "fi"', "fi = 3"), "'voices'.fi must be text"),
        (("voices = {", "voices = 3 #"), "'voices' in [speech] must be table"),
        (('speaker_device = "default"', 'speaker_device = "hw:0 -D x"'), "ALSA device name"),
        (('speaker_device = "default"', 'speaker_device = "$(reboot)"'), "ALSA device name"),
        (('speaker_device = "default"', 'speaker_device = "\\u0000"'), "ALSA device name"),
        (('speaker_device = "default"', 'speaker_device = ["a"]'), "must be text"),
        (('headset_device = "plughw', 'headset_device = "\\n\\nplughw'), "ALSA device name"),
        (('headset = "auto"', 'headset = "bluetooth"'), "must be one of auto, usb, jack, none"),
        (("volume = 7", "volume = 0"), "'volume' in [speech] must be 1 to 10"),
        (("volume = 7", "volume = 11"), "must be 1 to 10"),
        (("volume = 7", "volume = 7.5"), "'volume' in [speech] must be int"),
        (("volume = 7", "volume = true"), "must be int"),
        (("words_per_minute = 150", "words_per_minute = 9999"), "must be 80 to 450"),
        (("volume = 7", "volume = 7\nvolum = 3"), "unknown key 'volum' in [speech]"),
    ],
)
def test_impossible_speech_values_get_a_clear_located_error(change, message):
    old, new = change
    text = with_speech()
    assert old in text
    error = error_for(text.replace(old, new, 1))
    assert message in str(error)
    assert error.line is not None and error.line > 0
    assert len(str(error)) < 400  # a hostile value is not echoed at length


def test_a_speech_mistake_names_its_line():
    text = textwrap.dedent(with_speech()).replace("volume = 7", "volume = 70")
    error = error_for(text)
    assert text.splitlines()[error.line - 1] == "volume = 70"


def test_speech_that_is_not_a_table_is_refused():
    error = error_for('speech = "on"\n' + TWO_SERVICES)
    assert "'speech' must be a [speech] table" in str(error)
